"""The exchange's decisions, with no I/O: admit or refuse, what to send, what to answer.

``rpn.relay`` moves bytes and Deferreds; everything it decides comes from here, so that each
rule (who may send, which fault, which headers, which outcome) is written once and tested in
microseconds:

- ``admit`` reads a complete request (head, body, the client certificate's identity) and
  returns its routing key, or raises the ``RpnFailure`` that refuses it;
- ``upstream_headers`` are the headers sent to the AMC with the untouched body;
- ``relayed_headers`` are the AMC's headers as relayed back;
- ``fault_response`` is every fault the relay answers, wherever the refusal was decided;
- ``amc_failure`` names the AMC in a forwarding failure;
- ``record_answer`` and ``record_fault`` fill the exchange's record from what happened.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roc.model import RELAYED_SERVICES, RoutingKey, Service, SoapVersion, soap_action
from roc.model import soap_content_type as content_type
from roc.reasons import Reason
from rpn.errors import RpnError, RpnFailure
from rpn.faults import fault_document
from rpn.interfaces import IRoutingExtractor
from rpn.lifecycle import State
from rpn.outcomes import AnswerVerdict, Outcome, outcome_of_error
from rpn.registration import Registration
from rpn.routing import RequestView
from rpn.stats import ExchangeRecord

__all__ = [
    "Identity",
    "RelayPolicy",
    "Response",
    "admit",
    "amc_failure",
    "fault_response",
    "record_answer",
    "record_fault",
    "relayed_headers",
    "upstream_headers",
]

_SOAP_TYPES = (b"text/xml", b"application/soap+xml")
_USER_AGENT = (b"User-Agent", b"PiANO-RPN/0.1")
_SOAP_ACTIONS = {service: f'"{soap_action(service)}"'.encode() for service in Service}
#: (FINESS, expiry as unix time) read from a client certificate; None when it has none.
Identity = tuple[str | None, float | None]


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    """The parts of the configuration the exchange path reads; swapped whole on reload."""

    paths: tuple[str, ...]
    registration: Registration
    check_sender: bool
    finess_attribute: str
    max_body_bytes: int
    read_timeout: float
    #: Exchanges one establishment may have in flight at once (429 above).
    max_in_flight_per_establishment: int = 64


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer the relay writes: status, headers (no length, no date), body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class TextHeaders(Mapping[str, str]):
    """The request's headers as text, decoded only when a routing extractor reads one.

    Routing reads two or three of a request's headers: decoding all of them for every
    exchange was work done for nothing.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[bytes, bytes]) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> str:
        return self._raw[name.encode("latin-1")].decode("latin-1")

    def get(self, name: str, default: Any = None) -> Any:
        value = self._raw.get(name.encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for name in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _path_matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def identify(policy: RelayPolicy, identity: Identity, record: ExchangeRecord) -> str:
    """The registered FINESS of the client certificate, noted on *record*; else refused.

    Any refusal after this one is counted for that establishment.
    """
    finess, expiry = identity
    if finess is None:
        raise RpnFailure(
            RpnError.SENDER_NOT_REGISTERED,
            Reason("no FINESS in the client certificate", "aucun FINESS dans le certificat client"),
        )
    record.finess = finess
    if not policy.registration.knows(finess):
        raise RpnFailure(
            RpnError.SENDER_NOT_REGISTERED,
            Reason(
                f"certificate FINESS {finess} is neither a registered site nor legal entity",
                f"FINESS lu dans le certificat : {finess}, ni site ni entité juridique inscrits",
            ),
        )
    record.registered = True
    record.certificate_expiry = expiry
    return finess


def admit(
    policy: RelayPolicy,
    extractor: IRoutingExtractor,
    method: bytes,
    path: bytes,
    headers: Mapping[bytes, bytes],
    body: bytes,
    identity: Identity,
    in_flight: Mapping[str, int],
    record: ExchangeRecord,
) -> RoutingKey:
    """The routing key of a request the relay may forward; ``RpnFailure`` says why not.

    *in_flight* counts each establishment's exchanges already under way. *record* receives
    what is known as it is learnt (FINESS, exchange id, service), refused or not.
    """
    text_path = path.decode("latin-1")
    # The certificate is read first so that a refusal of the method, path or content type is
    # counted for a registered establishment; an unknown certificate is refused after those
    # checks, as before (the HTTP refusal says more to whoever sent it).
    try:
        finess = identify(policy, identity, record)
        unidentified = None
    except RpnFailure as failure:
        unidentified = failure
    if method != b"POST":
        if not _path_matches(text_path, policy.paths):
            raise RpnFailure(RpnError.NOT_FOUND, _path_reason(policy.paths))
        raise RpnFailure(RpnError.METHOD_NOT_ALLOWED)
    if not _path_matches(text_path, policy.paths):
        raise RpnFailure(RpnError.NOT_FOUND, _path_reason(policy.paths))
    ctype = headers.get(b"content-type")
    if ctype is None or not ctype.lower().startswith(_SOAP_TYPES):
        raise RpnFailure(RpnError.CONTENT_TYPE)
    if unidentified is not None:
        raise unidentified
    limit = policy.max_in_flight_per_establishment
    if in_flight.get(finess, 0) >= limit:
        raise RpnFailure(
            RpnError.RATE_LIMITED,
            Reason(
                f"{limit} exchanges already in flight for FINESS {finess} (the limit)",
                f"{limit} échanges déjà en cours pour le FINESS {finess} (la limite)",
            ),
            retry_after=1.0,
        )
    key = extractor.extract(RequestView(text_path, TextHeaders(headers), body))
    record.exchange_id = key.exchange_id
    record.service = key.service.value
    record.version = key.roc_version.value
    if key.service is Service.DRE:
        raise RpnFailure(RpnError.DRE_NOT_RELAYED)
    if key.service not in RELAYED_SERVICES:
        raise RpnFailure(
            RpnError.SERVICE_NOT_OFFERED,
            Reason(f"{key.service.value} is not relayed", f"{key.service.value} n'est pas relayé"),
        )
    if policy.check_sender:
        refusal = policy.registration.sender_refusal(
            finess, key.sender_finess_legal, key.sender_finess_site
        )
        if refusal is not None:
            raise RpnFailure(RpnError.SENDER_MISMATCH, refusal)
    unreachable = policy.registration.reach_refusal(finess, key.amc.amc_number)
    if unreachable is not None:
        state, reason = unreachable
        raise RpnFailure(_UNREACHABLE[state], reason)
    return key


#: The fault of an AMC the establishment's state does not reach (rpn.lifecycle).
_UNREACHABLE = {State.QUALIFICATION: RpnError.IN_QUALIFICATION, State.SUSPENDED: RpnError.SUSPENDED}


def _path_reason(paths: tuple[str, ...]) -> Reason:
    # The path itself is not repeated: a client could put anything in it.
    published = ", ".join(paths)
    return Reason(
        f"services are published under {published}", f"les services sont publiés sous {published}"
    )


def not_offered(amc: str, amc_name: str, key: RoutingKey) -> RpnFailure:
    wanted = f"{key.service.value} {key.roc_version.value}"
    return RpnFailure(
        RpnError.SERVICE_NOT_OFFERED,
        Reason(
            f"AMC {amc} ({amc_name}) does not offer {wanted}",
            f"l'AMC {amc} ({amc_name}) ne propose pas {wanted}",
        ),
    )


def amc_failure(failure: RpnFailure, amc: str, amc_name: str) -> RpnFailure:
    """*failure* (from the AMC's upstream) with the AMC named in its detail."""
    who = f"AMC {amc} ({amc_name})" if amc_name else f"AMC {amc}"
    detail = failure.detail
    if isinstance(detail, Reason):
        named = detail.about(who)
    else:
        named = Reason(f"{who}: {detail}" if detail else who, f"{who} : {failure.detail_fr}")
    return RpnFailure(
        failure.error,
        named,
        exchange_id=failure.exchange_id,
        retry_after=failure.retry_after,
    )


def upstream_headers(
    headers: Mapping[bytes, bytes], key: RoutingKey, finess: str
) -> list[tuple[bytes, bytes]]:
    """What the AMC receives with the body: only validated values, so no CR/LF gets in."""
    ctype = headers.get(b"content-type") or b"text/xml; charset=utf-8"
    sent = [
        (b"Content-Type", ctype),
        _USER_AGENT,
        (b"X-ROC-Echange", key.exchange_id.encode("ascii")),
        (b"X-ROC-Emetteur-Finess", finess.encode("ascii")),
    ]
    if key.soap_version is SoapVersion.SOAP11:
        sent.append((b"SOAPAction", _SOAP_ACTIONS[key.service]))
    return sent


def relayed_headers(
    answer: Sequence[tuple[bytes, bytes]], exchange_id: str
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The AMC's headers as relayed, and whether they carry a Date.

    One pass: the AMC's X-ROC-Echange is replaced by the relay's, its Date kept (the server
    then adds none).
    """
    relayed = []
    has_date = False
    for name, value in answer:
        lowered = name.lower()
        if lowered == b"x-roc-echange":
            continue
        has_date = has_date or lowered == b"date"
        relayed.append((name, value))
    relayed.append((b"X-ROC-Echange", exchange_id.encode("ascii")))
    return relayed, has_date


def fault_response(failure: RpnFailure, exchange_id: str, version: SoapVersion) -> Response:
    """The relay's answer to *failure*: a SOAP Fault in the client's SOAP version."""
    error = failure.error
    body = fault_document(error, failure.detail_fr, exchange_id, version)
    headers = [(b"Content-Type", content_type(version).encode())]
    if exchange_id:
        headers.append((b"X-ROC-Echange", exchange_id.encode("ascii")))
    if error is RpnError.METHOD_NOT_ALLOWED:
        headers.append((b"Allow", b"POST"))
    if error.spec.retryable and error.http_status in (429, 503):
        wait = failure.retry_after if failure.retry_after is not None else 1.0
        headers.append((b"Retry-After", b"%d" % max(1, round(wait))))
    return Response(error.http_status, headers, body)


def record_fault(record: ExchangeRecord, failure: RpnFailure, response: Response) -> None:
    error = failure.error
    if not record.exchange_id and failure.exchange_id:
        record.exchange_id = failure.exchange_id
    record.code = error.code
    record.status = error.http_status
    record.outcome = outcome_of_error(error).label
    record.bytes_out = len(response.body)


def record_answer(
    record: ExchangeRecord, status: int, body: bytes, seconds: float, verdict: AnswerVerdict
) -> None:
    record.business_code = verdict.business_code
    record.amc_code = verdict.amc_code
    record.outcome = verdict.outcome.label
    record.status = status
    record.upstream_seconds = seconds
    record.bytes_out = len(body)


def record_gone(record: ExchangeRecord) -> None:
    """The establishment hung up before its answer (what the AMC said is kept)."""
    record.outcome = Outcome.CLIENT_GONE.label
