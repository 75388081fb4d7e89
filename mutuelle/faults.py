"""The simulator's technical faults: one stable code, HTTP status and message each.

Business answers (rights closed, unknown beneficiary...) are never faults: they are ordinary
answers with a ``CodeRetour``. A fault says the request could not be processed at all. Codes
start with ``MUT-`` so a publisher can tell them from the relay's ``RPN-`` faults; the detail
element lives in its own namespace (``roc/schemas/mutuelle-erreurs.xsd``).

Fault messages and details are in French (hospitals read them; field names stay as they are)
and name fields and rules, never the values sent: a request carries personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from piano.specs import SpecEnum
from roc.model import SoapVersion
from roc.soapfault import fault_envelope

#: Namespace of the detail element of the simulator's faults.
MUTUELLE_FAULT_NS = "urn:piano:mutuelle:erreurs:v1"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    code: str
    http_status: int
    #: "Client" (the sender must change its request) or "Server".
    fault_role: str
    message: str


class MutuelleError(SpecEnum):
    """Every fault Mutuelle ANS answers with. Codes are stable: clients may match on them."""

    XML_FORBIDDEN = FaultSpec(
        "MUT-400-XML",
        400,
        "Client",
        "Le message n'est pas du XML bien formé, ou utilise une DTD ou des entités, qui sont "
        "refusées.",
    )
    NOT_SOAP = FaultSpec(
        "MUT-400-SOAP",
        400,
        "Client",
        "Le message n'est pas une enveloppe SOAP 1.1 ou 1.2 dont le Body contient exactement un "
        "élément.",
    )
    ROUTING_INVALID = FaultSpec(
        "MUT-400-ROUTAGE",
        400,
        "Client",
        "Le bloc de routage de l'en-tête SOAP est absent, incomplet ou invalide.",
    )
    CONTRADICTORY = FaultSpec(
        "MUT-400-INCOHERENT",
        400,
        "Client",
        "Le chemin, l'action SOAP, le bloc de routage et le corps doivent nommer le même service.",
    )
    REQUEST_INVALID = FaultSpec(
        "MUT-400-DEMANDE",
        400,
        "Client",
        "Il manque un champ au corps de la demande, ou une valeur est invalide.",
    )
    NOT_CONFORMING = FaultSpec(
        "MUT-400-CONFORMITE",
        400,
        "Client",
        "La demande enfreint des règles ROC (docs/catalogue.md, règles de conformité) ; les "
        "premiers écarts sont nommés.",
    )
    SIGNATURE_INVALID = FaultSpec(
        "MUT-400-SIGNATURE",
        400,
        "Client",
        "La signature XML du message (en-tête WS-Security) est absente ou invalide ; la règle "
        "enfreinte est nommée (docs/catalogue.md, signatures).",
    )
    AMC_NOT_SIMULATED = FaultSpec(
        "MUT-400-AMC-INCONNUE",
        400,
        "Client",
        "Mutuelle ANS ne simule pas l'AMC nommée dans le bloc de routage.",
    )
    NOT_FOUND = FaultSpec(
        "MUT-404-CHEMIN", 404, "Client", "Aucun service ROC n'est publié à ce chemin."
    )
    METHOD_NOT_ALLOWED = FaultSpec(
        "MUT-405-METHODE", 405, "Client", "Les services ROC n'acceptent que POST."
    )
    BODY_TOO_LARGE = FaultSpec(
        "MUT-413-TAILLE", 413, "Client", "Le message dépasse la taille acceptée par le simulateur."
    )
    CONTENT_TYPE = FaultSpec(
        "MUT-415-TYPE",
        415,
        "Client",
        "La demande doit être en SOAP : Content-Type text/xml ou application/soap+xml.",
    )
    INTERNAL = FaultSpec(
        "MUT-500-INTERNE",
        500,
        "Server",
        "Le simulateur n'a pas pu traiter la demande : c'est un défaut de Mutuelle ANS.",
    )
    STORAGE_UNAVAILABLE = FaultSpec(
        "MUT-503-STOCKAGE",
        503,
        "Server",
        "L'état des bacs à sable est momentanément inaccessible : rien n'a été enregistré, "
        "renvoyez la même demande dans quelques secondes (en-tête Retry-After).",
    )
    SIMULATED_FAULT = FaultSpec(
        "MUT-500-SIMULE",
        500,
        "Server",
        "Panne technique simulée (cas du catalogue ou bac à sable) : l'AMC a échoué.",
    )

    @property
    def spec(self) -> FaultSpec:
        return self.value


class MutuelleFault(Exception):
    """A request the simulator answers with a fault; *detail* is safe to show and log."""

    def __init__(self, error: MutuelleError, detail: str = "") -> None:
        super().__init__(f"{error.code}: {detail or error.spec.message}")
        self.error = error
        self.detail = detail


def fault_document(
    error: MutuelleError,
    detail: str = "",
    exchange_id: str = "",
    version: SoapVersion = SoapVersion.SOAP11,
) -> bytes:
    """A complete SOAP envelope, in *version*, carrying *error* as a Fault."""
    spec = error.spec
    text = spec.message + (f" ({detail})" if detail else "")
    ns = MUTUELLE_FAULT_NS
    simulator_detail = (
        f'<m:ErreurSimulateur xmlns:m="{ns}">'
        f"<m:Code>{escape(spec.code)}</m:Code>"
        f"<m:Message>{escape(text)}</m:Message>"
        f"<m:IdentifiantEchange>{escape(exchange_id)}</m:IdentifiantEchange>"
        "</m:ErreurSimulateur>"
    )
    return fault_envelope(version, spec.fault_role == "Client", text, simulator_detail)
