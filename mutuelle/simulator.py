"""One exchange with Mutuelle ANS, from request bytes to answer bytes, without I/O.

``Simulator.handle`` checks the envelope, the agreement between path, SOAP action, routing
block and body, the AMC, and the body's schema, then applies the service's rules. Every
outcome, business answer or fault, comes with an ``ExchangeLog`` that holds no personal
data: the Twisted resource logs it as is.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass, field

from lxml import etree
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock

from mutuelle import technical
from mutuelle.billing import ArlAnswer, ArlOutcome, Invoice
from mutuelle.billing_codec import (
    DRE_NS,
    INVOICE_ROOT,
    RETURNS_LISTED,
    arl_element,
    read_invoice,
    read_returns_request,
    returns_element,
)
from mutuelle.billing_codec import (
    ROOTS as BILLING_ROOTS,
)
from mutuelle.care_codec import (
    care_answer_element,
    del_answer_element,
    read_care_request,
    read_del_request,
)
from mutuelle.catalogue import CaseRequest, Catalogue
from mutuelle.codec import (
    RequestInvalid,
    ann_answer_element,
    idb_answer_element,
    read_ann_request,
    read_idb_request,
)
from mutuelle.conformance import care_violations, idb_violations, invoice_violations
from mutuelle.datafiles import SimulatorData
from mutuelle.decisions import (
    DelAnswer,
    DelRequest,
    calculate,
    cancel,
    deliver_returns,
    invoice,
    record_identification,
    simulate_in,
)
from mutuelle.demo_annuaire import look_up
from mutuelle.faults import MutuelleError, MutuelleFault, fault_document
from mutuelle.idb import IdbAnswer, IdbRequest, decide
from mutuelle.sandbox import BODY_KEPT_BYTES, DelOutcome, JournalEntry, Sandboxes, Violation
from mutuelle.schemas import validation_errors
from mutuelle.signatures import SIGNATURE_FIELD, SignaturePolicy, signature_violation
from mutuelle.soap import (
    SoapRequest,
    action_of,
    envelope,
    read_envelope,
    read_routing,
    soap_version_of_content_type,
)
from mutuelle.storage import ISandbox
from mutuelle.technical import TechnicalFault
from roc.model import (
    SERVICE_NS,
    RocVersion,
    RoutingKey,
    Service,
    SoapVersion,
    soap_action,
    soap_content_type,
)
from roc.signature import Defect, Trust

#: Services published under /roc/<SERVICE>.
PUBLISHED = frozenset(
    {Service.IDB, Service.SIM, Service.CLC, Service.DEL, Service.ANN, Service.DRE}
)

DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Sandbox of exchanges whose establishment is unknown (plain listener without the header).
ANONYMOUS_SANDBOX = "anonyme"
#: At most this many violations are named in a MUT-400-CONFORMITE or MUT-400-DEMANDE fault.
FAULT_VIOLATIONS = 3


@dataclass(slots=True)
class ExchangeLog:
    """What is known of an exchange, safe to log: identifiers and outcome codes only.

    Filled in as the exchange is understood (mutable: one per exchange, never shared).
    """

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
    #: Conformance violations found (fields and rule codes, never values).
    violations: tuple[Violation, ...] = ()
    #: The simulated technical fault played, if any.
    technical_fault: str = ""
    #: The catalogue cases the request was about (its beneficiary's), refused or not.
    aimed: tuple[str, ...] = ()
    #: The signature as checked: "" not checked, "VALIDE", or the defect's rule.
    signature: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    record: ExchangeLog
    headers: tuple[tuple[str, str], ...] = field(default=())
    #: Seconds to wait before answering (technical faults REPONSE_TARDIVE, DELAI_DEPASSE).
    delay: float = 0.0
    #: DELAI_DEPASSE: close the connection after the delay, without an answer.
    drop: bool = False
    #: CONNEXION_COUPEE: abort the connection after this many bytes of the body.
    abort_after: int | None = None


def _refusal_violation(fault: MutuelleFault) -> Violation:
    """A refused request, as the one violation its sandbox journal records.

    Every request the simulator refuses is non-conforming, whatever the stage that refused it
    (method, size, XML, routing block, request fields): the rule is the fault's code, the field
    the one its detail names (``Routage/AMC/Numero : ...``), else the message as a whole.
    """
    field, sep, reason = fault.detail.partition(" : ")
    if not sep or " " in field:
        field, reason = "message", fault.detail or fault.error.spec.message
    return Violation(field, fault.error.code, reason)


class Simulator:
    """Answers ROC exchanges from the fictitious data and the catalogue."""

    def __init__(
        self,
        data: SimulatorData,
        catalogue: Catalogue,
        public_url: str,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: IReactorTime | None = None,
        timeout_delay: float = 65.0,
        late_delay: float = 3.0,
        signature_policy: SignaturePolicy = SignaturePolicy.OFF,
        signature_trust: Trust | None = None,
    ) -> None:
        if signature_trust is None and signature_policy is not SignaturePolicy.OFF:
            raise ValueError("checking signatures needs trusted certification authorities")
        self.data = data
        self.catalogue = catalogue
        self.public_url = public_url
        self.max_body_bytes = max_body_bytes
        self.clock = clock or Clock()
        self.sandboxes = Sandboxes(self.clock, catalogue.sandbox_seed())
        #: The configuration's signature policy (a sandbox may override it).
        self.signature_policy = signature_policy
        self.signature_trust = signature_trust
        self.timeout_delay = timeout_delay
        self.late_delay = late_delay

    def handle(
        self,
        service: str,
        method: str,
        content_type: str | None,
        soap_action_header: str | None,
        body: bytes,
        establishment: str | None = None,
    ) -> Reply:
        """The reply to *body* POSTed at ``/roc/<service>`` by *establishment* (a FINESS).

        The exchange goes to the establishment's sandbox journal, with its conformance report.
        This one uses the simulator's own sandboxes in memory; ``handle_in`` any sandbox.
        """
        sandbox = self.sandboxes.get(sandbox_name(establishment))
        return self.handle_in(sandbox, service, method, content_type, soap_action_header, body)

    def handle_in(
        self,
        sandbox: ISandbox,
        service: str,
        method: str,
        content_type: str | None,
        soap_action_header: str | None,
        body: bytes,
        via_relay: bool = False,
    ) -> Reply:
        """The reply to *body* POSTed at ``/roc/<service>``, played in *sandbox*.

        *via_relay*: the exchange came through the relay (journaled, for the qualification
        steps that must be played through it)."""
        reply = self._reply(sandbox, service, method, content_type, soap_action_header, body)
        r = reply.record
        if r.service != "ANN":
            sandbox.record(
                JournalEntry(
                    sequence=0,
                    time=0.0,
                    service=r.service,
                    exchange_id=r.exchange_id,
                    amc=r.amc,
                    roc_version=r.roc_version,
                    http_status=r.http_status,
                    outcome=r.outcome,
                    case=r.case,
                    violations=r.violations,
                    technical_fault=r.technical_fault,
                    request=body if len(body) <= BODY_KEPT_BYTES else b"",
                    answer=reply.body if len(reply.body) <= BODY_KEPT_BYTES else b"",
                    aimed=r.aimed,
                    via_relay=via_relay,
                    signature=r.signature,
                )
            )
        return reply

    def _reply(
        self,
        sandbox: ISandbox,
        service: str,
        method: str,
        content_type: str | None,
        soap_action_header: str | None,
        body: bytes,
    ) -> Reply:
        record = ExchangeLog(service=_loggable(service))
        version = soap_version_of_content_type(content_type) or SoapVersion.SOAP11
        record.soap_version = version.value
        try:
            return self._handle(
                sandbox, record, service, method, content_type, soap_action_header, body
            )
        except _Failed as failed:
            fault = failed.fault
            record = failed.record
            record.http_status = fault.error.http_status
            record.outcome = fault.error.code
            record.detail = fault.detail
            if not record.violations and fault.error.http_status < 500:
                record.violations = (_refusal_violation(fault),)
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
        sandbox: ISandbox,
        record: ExchangeLog,
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
            raise fail(MutuelleError.BODY_TOO_LARGE, f"au plus {self.max_body_bytes} octets")
        announced = soap_version_of_content_type(content_type)
        if announced is None:
            raise fail(MutuelleError.CONTENT_TYPE)
        try:
            request = read_envelope(body, self.max_body_bytes)
        except MutuelleFault as fault:
            raise _Failed(record, fault) from None
        record.soap_version = request.version.value
        if request.version is not announced:
            raise fail(
                MutuelleError.NOT_SOAP,
                f"le Content-Type annonce SOAP {announced.value}, l'enveloppe est en SOAP "
                f"{request.version.value}",
            )
        action = action_of(content_type, soap_action_header)
        if action is not None and action != soap_action(service):
            raise fail(
                MutuelleError.CONTRADICTORY, f"l'action SOAP n'est pas {soap_action(service)}"
            )
        expected_root = f"Demande{service.value}"
        billing_roots = {f"{{{DRE_NS}}}{root}" for root in BILLING_ROOTS}
        if service is Service.DRE and request.body.tag in billing_roots:
            pass
        elif request.body.tag != f"{{{SERVICE_NS[service.value]}}}{expected_root}":
            raise fail(
                MutuelleError.CONTRADICTORY,
                f"le Body doit contenir {expected_root} dans l'espace de noms "
                f"{SERVICE_NS[service.value]}",
            )
        if service is Service.ANN:
            return self._annuaire(record, request.body, request.version)
        try:
            routing = read_routing(request)
        except MutuelleFault as fault:
            raise _Failed(record, fault) from None
        record.exchange_id = routing.exchange_id
        record.amc = routing.amc.amc_number
        record.roc_version = routing.roc_version.value
        record.sender_finess = routing.sender_finess_site
        if routing.service is not service:
            raise fail(MutuelleError.CONTRADICTORY, f"Routage/Service n'est pas {service.value}")
        if self.data.dataset.amc(routing.amc.amc_number) is None:
            raise fail(MutuelleError.AMC_NOT_SIMULATED, "Routage/AMC/Numero")
        record.aimed = self._aimed(request.body, service, routing)
        signed = self._signature(sandbox, request, routing)
        if self._checks_signatures(sandbox):
            record.signature = "VALIDE" if signed is None else signed.rule
        if signed is not None:
            record.violations = (signed,)
            if self.policy_of(sandbox) is SignaturePolicy.REQUIRE:
                raise fail(MutuelleError.SIGNATURE_INVALID, _named((signed,)))
        schema_errors = validation_errors(request.body, service.value, limit=FAULT_VIOLATIONS)
        if service is Service.DRE:
            return self._billing(sandbox, record, request, routing, schema_errors)
        if schema_errors:
            violations = tuple(Violation(path, "XSD", reason) for path, reason in schema_errors)
            record.violations = (*record.violations, *violations)
            raise fail(MutuelleError.REQUEST_INVALID, _named(violations))
        amc_number, roc_version = routing.amc.amc_number, routing.roc_version
        parsed: CaseRequest
        try:
            if service is Service.IDB:
                parsed = read_idb_request(request.body, validate=False)
                found = idb_violations(parsed, roc_version)
            elif service is Service.DEL:
                parsed = read_del_request(request.body, validate=False)
                found = []
            else:
                parsed = read_care_request(request.body, service.value, validate=False)
                found = care_violations(
                    parsed, roc_version, f"Demande{service.value}", self.data.tariffs
                )
        except RequestInvalid as exc:
            raise fail(MutuelleError.REQUEST_INVALID, str(exc)) from None
        if found:
            record.violations = (*record.violations, *found)
            raise fail(MutuelleError.NOT_CONFORMING, _named(found))
        played = sandbox.fault or self.catalogue.technical_fault(amc_number, parsed.beneficiary)
        # Faults on the way back (lost, late or garbled answers) come after the AMC processed
        # the request, as in real life: a CLC whose answer was lost did record an engagement.
        processed = played is None or played.processed
        dataset = self.data.dataset
        element: etree._Element
        if isinstance(parsed, IdbRequest):
            idb_answer = decide(parsed, amc_number, roc_version, dataset)
            if processed:
                record_identification(sandbox, amc_number, parsed, idb_answer)
            if played is None:  # the most frequent exchange: its bytes are memoised
                code = idb_answer.code
                self._matched(record, amc_number, roc_version, parsed, code, service)
                document = _idb_document(idb_answer, request.version)
                return Reply(200, soap_content_type(request.version), document, record)
            code, element = idb_answer.code, idb_answer_element(idb_answer)
        elif isinstance(parsed, DelRequest):
            if processed:
                del_answer = cancel(parsed, amc_number, dataset, sandbox)
            else:
                del_answer = DelAnswer(DelOutcome.UNKNOWN)
            code, element = del_answer.code, del_answer_element(del_answer)
        else:
            tariffs = self.data.tariffs
            if service is Service.CLC and processed:
                care_answer = calculate(parsed, amc_number, roc_version, dataset, tariffs, sandbox)
            else:
                care_answer = simulate_in(
                    parsed, amc_number, roc_version, dataset, tariffs, sandbox
                )
            code, element = care_answer.code, care_answer_element(care_answer, service.value)
        self._matched(record, amc_number, roc_version, parsed, code, service)
        if played is not None:
            return self._technical(record, played, element, request.version, service)
        return self._answer(record, element, request.version)

    def _billing(
        self,
        sandbox: ISandbox,
        record: ExchangeLog,
        request: SoapRequest,
        routing: RoutingKey,
        schema_errors: list[tuple[str, str]],
    ) -> Reply:
        """DRE: an invoice (its ARL; schema errors are a negative ARL) or a returns poll."""
        amc_number = routing.amc.amc_number
        is_invoice = request.body.tag == f"{{{DRE_NS}}}{INVOICE_ROOT}"
        violations = tuple(Violation(path, "XSD", reason) for path, reason in schema_errors)
        record.violations = (*record.violations, *violations)
        element: etree._Element
        if schema_errors and not is_invoice:
            raise _Failed(record, MutuelleFault(MutuelleError.REQUEST_INVALID, _named(violations)))
        if schema_errors:
            number = request.body.findtext(f"{{{DRE_NS}}}NumeroFacture") or ""
            shown = number.strip() if _INVOICE_NUMBER.fullmatch(number.strip()) else ""
            answer = ArlAnswer(ArlOutcome.SCHEMA, shown)
            anomalies = [f"{path} : {reason}" for path, reason in schema_errors]
            code, element = answer.code, arl_element(answer, anomalies)
            parsed_invoice: Invoice | None = None
        elif is_invoice:
            try:
                parsed_invoice = read_invoice(request.body, validate=False)
            except RequestInvalid as exc:
                raise _Failed(
                    record, MutuelleFault(MutuelleError.REQUEST_INVALID, str(exc))
                ) from None
            found = invoice_violations(parsed_invoice)
            if found:
                record.violations = (*record.violations, *found)
                answer = ArlAnswer(ArlOutcome.SCHEMA, parsed_invoice.invoice_number)
                anomalies = [f"{v.field} : [{v.rule}] {v.reason}" for v in found]
                code, element = answer.code, arl_element(answer, anomalies)
            else:
                answer = invoice(parsed_invoice, amc_number, self.data.dataset, sandbox)
                code, element = answer.code, arl_element(answer)
        else:
            parsed_invoice = None
            acknowledged = read_returns_request(request.body, validate=False)
            count, due = deliver_returns(acknowledged, amc_number, sandbox)
            code, element = RETURNS_LISTED[0], returns_element(count, due)
            record.detail = f"{len(due)} retour(s), {count} acquitté(s)"
        record.outcome = code
        case = None
        if parsed_invoice is not None:
            case = self.catalogue.match_invoice(
                amc_number, routing.roc_version, parsed_invoice, code
            )
        record.case = "" if case is None else case.name
        if sandbox.fault is not None:
            return self._technical(record, sandbox.fault, element, request.version, Service.DRE)
        return self._answer(record, element, request.version)

    def policy_of(self, sandbox: ISandbox) -> SignaturePolicy:
        """The signature policy in force in *sandbox* (its own, else the configuration's)."""
        if sandbox.signature_policy is None:
            return self.signature_policy
        return SignaturePolicy(sandbox.signature_policy)

    def _checks_signatures(self, sandbox: ISandbox) -> bool:
        return self.policy_of(sandbox) is not SignaturePolicy.OFF and (
            self.signature_trust is not None
        )

    def _aimed(
        self, body: etree._Element, service: Service, routing: RoutingKey
    ) -> tuple[str, ...]:
        """The catalogue cases about the beneficiary the request names, read leniently (the
        request may break the schema): what ties a refused attempt to its case."""
        nir = body.findtext(f".//{{*}}{_NIR_ELEMENT}")
        if not nir:
            return ()
        born = body.findtext(f".//{{*}}{_BIRTH_DATE_ELEMENT}")
        return self.catalogue.aimed(
            routing.amc.amc_number, routing.roc_version, service, nir.strip(), born
        )

    def _signature(
        self, sandbox: ISandbox, request: SoapRequest, routing: RoutingKey
    ) -> Violation | None:
        """The violation the request's signature commits, when the policy checks it."""
        trust = self.signature_trust
        if trust is None or not self._checks_signatures(sandbox):
            return None
        now = datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)
        root = request.body.getroottree().getroot()
        return signature_violation(root, routing, trust, now)

    def _matched(
        self,
        record: ExchangeLog,
        amc_number: str,
        version: RocVersion,
        parsed: CaseRequest,
        code: str,
        service: Service,
    ) -> None:
        """Record the outcome and the catalogue case the exchange played, if any."""
        defect = _defect(record.violations)
        case = self.catalogue.match(amc_number, version, parsed, code, service, defect)
        record.outcome = code
        record.case = "" if case is None else case.name

    def _technical(
        self,
        record: ExchangeLog,
        fault: TechnicalFault,
        element: etree._Element,
        version: SoapVersion,
        service: Service,
    ) -> Reply:
        """The reply playing *fault* instead of the answer *element* (no state was changed)."""
        record.technical_fault = fault.value
        record.outcome = f"FAUTE-{fault.value}"
        document = envelope(element, version)
        content_type = soap_content_type(version)
        if fault is TechnicalFault.LATE:
            return Reply(200, content_type, document, record, delay=self.late_delay)
        if fault is TechnicalFault.TIMEOUT:
            return Reply(200, content_type, b"", record, delay=self.timeout_delay, drop=True)
        if fault is TechnicalFault.RESET:
            return Reply(200, content_type, document, record, abort_after=len(document) // 3)
        if fault is TechnicalFault.TRUNCATED:
            return Reply(200, content_type, technical.truncated(document), record)
        if fault is TechnicalFault.WRONG_NAMESPACE:
            moved = technical.with_wrong_namespace(document, SERVICE_NS[service.value])
            return Reply(200, content_type, moved, record)
        if fault is TechnicalFault.HTTP_500:
            record.http_status = 500
            return Reply(500, "text/html; charset=utf-8", technical.HTTP_500_PAGE, record)
        if fault is TechnicalFault.HTTP_503:
            record.http_status = 503
            page = technical.HTTP_503_PAGE
            return Reply(503, "text/html; charset=utf-8", page, record, (("Retry-After", "30"),))
        error = MutuelleError.SIMULATED_FAULT
        record.http_status = error.http_status
        document = fault_document(error, "", record.exchange_id, version)
        return Reply(error.http_status, content_type, document, record)

    def _annuaire(self, record: ExchangeLog, body: etree._Element, version: SoapVersion) -> Reply:
        try:
            key = read_ann_request(body)
        except RequestInvalid as exc:
            raise _Failed(record, MutuelleFault(MutuelleError.REQUEST_INVALID, str(exc))) from None
        answer = look_up(self.data.dataset, key, self.public_url)
        record.amc = key.amc_number
        record.outcome = answer.code
        return self._answer(record, ann_answer_element(answer), version)

    def _answer(self, record: ExchangeLog, element: etree._Element, version: SoapVersion) -> Reply:
        return Reply(200, soap_content_type(version), envelope(element, version), record)

    def internal_error(self, service: str, content_type: str | None) -> Reply:
        """The fault answering an exchange the simulator failed on (a defect)."""
        return _server_fault(MutuelleError.INTERNAL, service, content_type)

    def bad_trainee(self, service: str, content_type: str | None, reason: str) -> Reply:
        """The fault answering an exchange naming a trainee that is not one (``trainees``)."""
        return _server_fault(MutuelleError.REQUEST_INVALID, service, content_type, detail=reason)

    def storage_unavailable(self, service: str, content_type: str | None) -> Reply:
        """The fault answering an exchange whose sandbox could not be read or written.

        Nothing of the exchange was kept, so a retry is safe: ``Retry-After`` says when.
        """
        retry = (("Retry-After", str(STORAGE_RETRY_AFTER)),)
        return _server_fault(MutuelleError.STORAGE_UNAVAILABLE, service, content_type, retry)


#: Seconds a client is told to wait before retrying when the storage is unavailable.
STORAGE_RETRY_AFTER = 5


def _server_fault(
    error: MutuelleError,
    service: str,
    content_type: str | None,
    headers: tuple[tuple[str, str], ...] = (),
    detail: str = "",
) -> Reply:
    version = soap_version_of_content_type(content_type) or SoapVersion.SOAP11
    record = ExchangeLog(
        service=_loggable(service),
        http_status=error.http_status,
        outcome=error.code,
        soap_version=version.value,
    )
    document = fault_document(error, detail, version=version)
    return Reply(error.http_status, soap_content_type(version), document, record, headers)


@functools.lru_cache(maxsize=4096)
def _idb_document(answer: IdbAnswer, version: SoapVersion) -> bytes:
    """The SOAP document carrying an IDB *answer* (a pure function of it, hence memoised)."""
    return envelope(idb_answer_element(answer), version)


def _named(violations: tuple[Violation, ...] | list[Violation]) -> str:
    """The first violations, for a fault's message: fields and rules, never values."""
    named = " ; ".join(
        f"{v.field} : {v.reason}" if v.rule == "XSD" else f"{v.field} : [{v.rule}] {v.reason}"
        for v in violations[:FAULT_VIOLATIONS]
    )
    more = len(violations) - FAULT_VIOLATIONS
    return named + (f" ; et {more} de plus" if more > 0 else "")


#: Elements naming a beneficiary, in every request of the project's model (docs/roc-model.md).
_NIR_ELEMENT, _BIRTH_DATE_ELEMENT = "NIR", "DateNaissance"


def _defect(violations: tuple[Violation, ...]) -> Defect | None:
    """The signature defect among *violations* (reported, not refused), if any."""
    for violation in violations:
        if violation.field == SIGNATURE_FIELD:
            return Defect(violation.rule)
    return None


def _loggable(service: str) -> str:
    """*service* when it names a ROC service, else "-" (a path is client-chosen text)."""
    return service if service in _SERVICE_CODES else "-"


_SERVICE_CODES = frozenset(s.value for s in Service)
#: An invoice number as the schema allows it: only then is it echoed in a negative ARL.
_INVOICE_NUMBER = re.compile(r"[A-Za-z0-9\-]{1,30}")
_PUBLISHED_CODES = frozenset(s.value for s in PUBLISHED)


def sandbox_name(establishment: str | None) -> str:
    """The sandbox an exchange from *establishment* (a FINESS, or None) plays in."""
    return establishment or ANONYMOUS_SANDBOX


class _Failed(Exception):
    """A fault, with what was known of the exchange when it was raised."""

    def __init__(self, record: ExchangeLog, fault: MutuelleFault) -> None:
        super().__init__(str(fault))
        self.record = record
        self.fault = fault
