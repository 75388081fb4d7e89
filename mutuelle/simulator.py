"""One exchange with Mutuelle ANS, from request bytes to answer bytes, without I/O.

``Simulator.handle`` checks the envelope, the agreement between path, SOAP action, routing
block and body, the AMC, and the body's schema, then applies the service's rules. Every
outcome, business answer or fault, comes with an ``ExchangeRecord`` that holds no personal
data: the Twisted resource logs it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lxml import etree

from mutuelle.annuaire import look_up
from mutuelle.catalogue import Catalogue
from mutuelle.codec import (
    RequestInvalid,
    ann_answer_element,
    idb_answer_element,
    read_ann_request,
    read_idb_request,
)
from mutuelle.datafiles import SimulatorData
from mutuelle.faults import MutuelleError, MutuelleFault, fault_document
from mutuelle.idb import decide
from mutuelle.soap import (
    action_of,
    envelope,
    read_envelope,
    read_routing,
    soap_version_of_content_type,
)
from roc.model import SERVICE_NS, Service, SoapVersion, soap_action
from roc.soap import content_type as soap_content_type

#: Services published under /roc/<SERVICE>.
PUBLISHED = frozenset({Service.IDB, Service.SIM, Service.CLC, Service.DEL, Service.ANN})
#: Published services whose rules are not simulated yet: they answer MUT-501-NON-SIMULE.
NOT_YET_SIMULATED = frozenset({Service.SIM, Service.CLC, Service.DEL})

DEFAULT_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ExchangeRecord:
    """What is known of an exchange, safe to log: identifiers and outcome codes only."""

    service: str
    http_status: int = 200
    #: The business CodeRetour ("00") or the fault code ("MUT-400-XML").
    outcome: str = ""
    exchange_id: str = ""
    amc: str = ""
    roc_version: str = ""
    soap_version: str = SoapVersion.SOAP11.value
    sender_finess: str = ""
    #: The catalogue case the exchange played, when it played one.
    case: str = ""
    #: For faults: the field and rule broken (never a value).
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    record: ExchangeRecord
    headers: tuple[tuple[str, str], ...] = field(default=())


class Simulator:
    """Answers ROC exchanges from the fictitious data and the catalogue."""

    def __init__(
        self,
        data: SimulatorData,
        catalogue: Catalogue,
        public_url: str,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.data = data
        self.catalogue = catalogue
        self.public_url = public_url
        self.max_body_bytes = max_body_bytes

    def handle(
        self,
        service: str,
        method: str,
        content_type: str | None,
        soap_action_header: str | None,
        body: bytes,
    ) -> Reply:
        """The reply to *body* POSTed at ``/roc/<service>``."""
        record = ExchangeRecord(service=_loggable(service))
        version = soap_version_of_content_type(content_type) or SoapVersion.SOAP11
        record = replace(record, soap_version=version.value)
        try:
            return self._handle(record, service, method, content_type, soap_action_header, body)
        except _Failed as failed:
            fault = failed.fault
            record = replace(
                failed.record,
                http_status=fault.error.http_status,
                outcome=fault.error.code,
                detail=fault.detail,
            )
            headers = (
                (("Allow", "POST"),) if fault.error is MutuelleError.METHOD_NOT_ALLOWED else ()
            )
            version = SoapVersion(record.soap_version)
            document = fault_document(fault.error, fault.detail, record.exchange_id, version)
            return Reply(
                fault.error.http_status, soap_content_type(version), document, record, headers
            )

    def _handle(
        self,
        record: ExchangeRecord,
        path_service: str,
        method: str,
        content_type: str | None,
        soap_action_header: str | None,
        body: bytes,
    ) -> Reply:
        # ``record`` grows as the exchange is understood; a fault carries what is known so far
        # (the closure reads the variable when called, not when defined).
        def fail(error: MutuelleError, detail: str = "") -> _Failed:
            return _Failed(record, MutuelleFault(error, detail))

        if path_service not in _PUBLISHED_CODES:
            raise fail(MutuelleError.NOT_FOUND)
        service = Service(path_service)
        if method != "POST":
            raise fail(MutuelleError.METHOD_NOT_ALLOWED)
        if len(body) > self.max_body_bytes:
            raise fail(MutuelleError.BODY_TOO_LARGE, f"at most {self.max_body_bytes} bytes")
        announced = soap_version_of_content_type(content_type)
        if announced is None:
            raise fail(MutuelleError.CONTENT_TYPE)
        try:
            request = read_envelope(body, self.max_body_bytes)
        except MutuelleFault as fault:
            raise _Failed(record, fault) from None
        record = replace(record, soap_version=request.version.value)
        if request.version is not announced:
            raise fail(
                MutuelleError.NOT_SOAP,
                f"Content-Type announces SOAP {announced.value}, the envelope is SOAP "
                f"{request.version.value}",
            )
        action = action_of(content_type, soap_action_header)
        if action is not None and action != soap_action(service):
            raise fail(MutuelleError.CONTRADICTORY, f"SOAP action is not {soap_action(service)}")
        expected_root = f"Demande{service.value}"
        if request.body.tag != f"{{{SERVICE_NS[service.value]}}}{expected_root}":
            raise fail(
                MutuelleError.CONTRADICTORY,
                f"the Body must hold {expected_root} in namespace {SERVICE_NS[service.value]}",
            )
        if service is Service.ANN:
            return self._annuaire(record, request.body, request.version)
        try:
            routing = read_routing(request)
        except MutuelleFault as fault:
            raise _Failed(record, fault) from None
        record = replace(
            record,
            exchange_id=routing.exchange_id,
            amc=routing.amc.amc_number,
            roc_version=routing.roc_version.value,
            sender_finess=routing.sender_finess_site,
        )
        if routing.service is not service:
            raise fail(MutuelleError.CONTRADICTORY, f"Routage/Service is not {service.value}")
        if self.data.dataset.amc(routing.amc.amc_number) is None:
            raise fail(MutuelleError.AMC_NOT_SIMULATED, "Routage/AMC/Numero")
        if service in NOT_YET_SIMULATED:
            raise fail(MutuelleError.SERVICE_NOT_SIMULATED)
        try:
            idb_request = read_idb_request(request.body)
        except RequestInvalid as exc:
            raise fail(MutuelleError.REQUEST_INVALID, str(exc)) from None
        answer = decide(idb_request, routing.amc.amc_number, routing.roc_version, self.data.dataset)
        case = self.catalogue.match(
            routing.amc.amc_number, routing.roc_version, idb_request, answer.code
        )
        record = replace(record, outcome=answer.code, case="" if case is None else case.name)
        return self._answer(record, idb_answer_element(answer), request.version)

    def _annuaire(
        self, record: ExchangeRecord, body: etree._Element, version: SoapVersion
    ) -> Reply:
        try:
            key = read_ann_request(body)
        except RequestInvalid as exc:
            raise _Failed(record, MutuelleFault(MutuelleError.REQUEST_INVALID, str(exc))) from None
        answer = look_up(self.data.dataset, key, self.public_url)
        record = replace(record, amc=key.amc_number, outcome=answer.code)
        return self._answer(record, ann_answer_element(answer), version)

    def _answer(
        self, record: ExchangeRecord, element: etree._Element, version: SoapVersion
    ) -> Reply:
        return Reply(200, soap_content_type(version), envelope(element, version), record)

    def internal_error(self, service: str, content_type: str | None) -> Reply:
        """The fault answering an exchange the simulator failed on (a defect)."""
        version = soap_version_of_content_type(content_type) or SoapVersion.SOAP11
        error = MutuelleError.INTERNAL
        record = ExchangeRecord(
            service=_loggable(service),
            http_status=error.http_status,
            outcome=error.code,
            soap_version=version.value,
        )
        return Reply(
            error.http_status,
            soap_content_type(version),
            fault_document(error, version=version),
            record,
        )


def _loggable(service: str) -> str:
    """*service* when it names a ROC service, else "-" (a path is client-chosen text)."""
    return service if service in _SERVICE_CODES else "-"


_SERVICE_CODES = frozenset(s.value for s in Service)
_PUBLISHED_CODES = frozenset(s.value for s in PUBLISHED)


class _Failed(Exception):
    """A fault, with what was known of the exchange when it was raised."""

    def __init__(self, record: ExchangeRecord, fault: MutuelleFault) -> None:
        super().__init__(str(fault))
        self.record = record
        self.fault = fault
