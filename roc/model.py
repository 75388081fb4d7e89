"""Names of the project's ROC model: namespaces, services, versions and the routing key."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_CONTENT_TYPE = "text/xml; charset=utf-8"
SOAP12_CONTENT_TYPE = "application/soap+xml; charset=utf-8"

#: Namespace of the routing block carried in the SOAP header.
ROUTING_NS = "urn:piano:roc:routage:v1"
#: Namespace of the faults the relay itself produces.
RPN_FAULT_NS = "urn:piano:rpn:erreurs:v1"
#: Namespace of each service's body elements.
SERVICE_NS = {
    "IDB": "urn:piano:roc:idb:v1",
    "SIM": "urn:piano:roc:sim:v1",
    "CLC": "urn:piano:roc:clc:v1",
    "DEL": "urn:piano:roc:del:v1",
    "ANN": "urn:piano:roc:ann:v1",
    #: Billing (DemandeDRE, DemandeRetours): served by an AMC directly, never relayed.
    "DRE": "urn:piano:roc:dre:v1",
}
#: SOAPAction value for each service (quotes included on the wire).
SOAP_ACTION_PREFIX = "urn:piano:roc:"


class Service(StrEnum):
    """ROC web services. ANN is called by the relay itself; DRE is never relayed."""

    IDB = "IDB"
    SIM = "SIM"
    CLC = "CLC"
    DEL = "DEL"
    ANN = "ANN"
    DRE = "DRE"


#: Services an establishment may send through the relay.
RELAYED_SERVICES = frozenset({Service.IDB, Service.SIM, Service.CLC, Service.DEL})


class RocVersion(StrEnum):
    V1 = "V1"
    V2 = "V2"


class SoapVersion(StrEnum):
    SOAP11 = "1.1"
    SOAP12 = "1.2"


def soap_content_type(version: SoapVersion) -> str:
    """The Content-Type of a message in SOAP *version*."""
    return SOAP12_CONTENT_TYPE if version is SoapVersion.SOAP12 else SOAP11_CONTENT_TYPE


def soap_action(service: Service | str) -> str:
    """The SOAPAction header value (without quotes) naming *service*."""
    return SOAP_ACTION_PREFIX + (service.value if isinstance(service, Service) else service)


@dataclass(frozen=True, slots=True)
class AmcKey:
    """The three routing identifiers of a patient's attestation: what the annuaire resolves."""

    amc_number: str
    convention_type: str
    secondary_criterion: str


@dataclass(frozen=True, slots=True)
class RoutingKey:
    """What the relay needs from a request, read without touching the body."""

    service: Service
    roc_version: RocVersion
    amc: AmcKey
    sender_finess_legal: str
    sender_finess_site: str
    exchange_id: str
    soap_version: SoapVersion = SoapVersion.SOAP11

    @property
    def sender_finess(self) -> frozenset[str]:
        """Every FINESS the message names as its sender (legal entity and site)."""
        return frozenset(f for f in (self.sender_finess_legal, self.sender_finess_site) if f)
