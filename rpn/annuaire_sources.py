"""Where AMC entries come from: a static TOML directory, an operator override, the ANN service.

Every source answers ``lookup(key)`` with an ``AmcEntry``, None for an AMC the directory does not
know, or a failure when it cannot answer. ``MalformedAnswer`` marks an answer that arrived but
cannot be trusted: the cache keeps its last-known-good entry and counts it for alerting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from lxml import etree
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from piano.config import ConfigError, read_toml
from roc.identifiers import amc_number_error, convention_type_error, secondary_criterion_error
from roc.model import (
    RELAYED_SERVICES,
    SERVICE_NS,
    SOAP11_CONTENT_TYPE,
    SOAP11_NS,
    AmcKey,
    RocVersion,
    soap_action,
)
from roc.xmlsafe import MalformedXml, UnsafeXml, parse_document
from rpn.http.client import Answer
from rpn.http.common import BodyTooLarge
from rpn.interfaces import AmcEntry, IAnnuaireSource, IHttpClient

ANN_NS = SERVICE_NS["ANN"]
#: Largest ANN answer read; a directory entry is a few hundred bytes.
MAX_ANSWER_BYTES = 256 * 1024

_SERVICES = frozenset(service.value for service in RELAYED_SERVICES)
_VERSIONS = frozenset(version.value for version in RocVersion)
_BARE_TOML_KEY = re.compile(r"[A-Za-z0-9_-]+")
_RETURN_CODE = re.compile(r"[A-Za-z0-9]{2}")
_FAULT_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class MalformedAnswer(Exception):
    """The annuaire answered, but with something that is not a valid ANN answer.

    Messages describe the problem, never the answer's content.
    """


def endpoint_key_error(key: str) -> str | None:
    """Why *key* ("IDB" or "IDB/V2") cannot name an endpoint, or None."""
    service, slash, version = key.partition("/")
    if service not in _SERVICES:
        return "unknown service"
    if slash and version not in _VERSIONS:
        return "unknown ROC version"
    return None


def endpoint_url_error(url: str, *, allow_http: bool = False) -> str | None:
    """Why *url* is not an acceptable AMC endpoint, or None."""
    wanted = "an http or https URL" if allow_http else "an https URL"
    if not url.isascii() or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        return f"endpoint must be {wanted} (ASCII, no spaces or control characters)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        return f"endpoint must be {wanted}"
    if parts.scheme not in (("https", "http") if allow_http else ("https",)):
        return f"endpoint must be {wanted}"
    if not parts.hostname:
        return "endpoint URL must name a host"
    if parts.username is not None or parts.password is not None:
        return "endpoint URL must not carry credentials"
    if parts.fragment:
        return "endpoint URL must not have a fragment"
    return None


# -- Static directory --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaticAmc:
    """One AMC of a static directory and the routing identifiers it answers for.

    An empty *convention_types* or *secondary_criteria* matches any value.
    """

    entry: AmcEntry
    convention_types: frozenset[str] = frozenset()
    secondary_criteria: frozenset[str] = frozenset()

    def matches(self, key: AmcKey) -> bool:
        return (
            key.amc_number == self.entry.amc_number
            and (not self.convention_types or key.convention_type in self.convention_types)
            and (not self.secondary_criteria or key.secondary_criterion in self.secondary_criteria)
        )


@implementer(IAnnuaireSource)
class StaticAnnuaireSource:
    """A directory held in memory, read from a TOML file (development, operator override)."""

    def __init__(self, amcs: Iterable[StaticAmc]) -> None:
        self._by_number: dict[str, StaticAmc] = {}
        for amc in amcs:
            number = amc.entry.amc_number
            if number in self._by_number:
                raise ConfigError(f"duplicate AMC number {number}")
            self._by_number[number] = amc

    @classmethod
    def from_file(
        cls, path: str | PathLike[str], *, allow_http: bool = False
    ) -> StaticAnnuaireSource:
        """Read a directory file; errors name the file and the path inside it."""
        data = read_toml(path)
        try:
            return cls.from_mapping(data, allow_http=allow_http)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, allow_http: bool = False
    ) -> StaticAnnuaireSource:
        """Build a directory from parsed TOML; see ``etc/dev/annuaire.toml`` for the format."""
        _refuse_unknown_keys(data, {"amc"}, "")
        items = data.get("amc", [])
        if not isinstance(items, list):
            raise ConfigError("amc: must be an array of tables ([[amc]])")
        amcs: list[StaticAmc] = []
        first_seen: dict[str, int] = {}
        for index, item in enumerate(items):
            path = f"amc[{index}]"
            amc = _static_amc(item, path, allow_http=allow_http)
            number = amc.entry.amc_number
            if number in first_seen:
                raise ConfigError(
                    f"{path}.number: duplicate AMC number (also amc[{first_seen[number]}])"
                )
            first_seen[number] = index
            amcs.append(amc)
        return cls(amcs)

    @property
    def entries(self) -> tuple[AmcEntry, ...]:
        """Every AMC of the directory, in file order."""
        return tuple(amc.entry for amc in self._by_number.values())

    def lookup(self, key: AmcKey) -> Deferred[AmcEntry | None]:
        amc = self._by_number.get(key.amc_number)
        return succeed(amc.entry if amc is not None and amc.matches(key) else None)


def _static_amc(item: object, path: str, *, allow_http: bool) -> StaticAmc:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{path}: must be a table")
    _refuse_unknown_keys(
        item, {"number", "name", "convention_types", "secondary_criteria", "endpoints"}, path
    )
    number = _required_string(item, "number", path)
    if (reason := amc_number_error(number)) is not None:
        raise ConfigError(f"{path}.number: {reason}")
    name = _required_string(item, "name", path).strip()
    if not name:
        raise ConfigError(f"{path}.name: must not be empty")
    convention_types = _string_set(item, "convention_types", path, convention_type_error)
    secondary_criteria = _string_set(item, "secondary_criteria", path, secondary_criterion_error)
    endpoints = item.get("endpoints")
    if endpoints is None:
        raise ConfigError(f"{path}.endpoints: required")
    if not isinstance(endpoints, Mapping) or not endpoints:
        raise ConfigError(f"{path}.endpoints: must be a table naming at least one service")
    checked: dict[str, str] = {}
    for key, url in endpoints.items():
        key_path = f"{path}.endpoints.{_toml_key(key)}"
        if (problem := endpoint_key_error(key)) is not None:
            raise ConfigError(f"{key_path}: {problem}")
        if not isinstance(url, str):
            raise ConfigError(f"{key_path}: must be a string")
        if (problem := endpoint_url_error(url, allow_http=allow_http)) is not None:
            raise ConfigError(f"{key_path}: {problem}")
        checked[key] = url
    return StaticAmc(AmcEntry(number, name, checked), convention_types, secondary_criteria)


def _refuse_unknown_keys(table: Mapping[str, Any], known: set[str], path: str) -> None:
    for key in table:
        if key not in known:
            prefix = f"{path}." if path else ""
            raise ConfigError(f"{prefix}{_toml_key(key)}: unknown key")


def _required_string(table: Mapping[str, Any], key: str, path: str) -> str:
    value = table.get(key)
    if value is None:
        raise ConfigError(f"{path}.{key}: required")
    if not isinstance(value, str):
        raise ConfigError(f'{path}.{key}: must be a string (write it in quotes: "...")')
    return value


def _string_set(
    table: Mapping[str, Any], key: str, path: str, rule: Callable[[str], str | None]
) -> frozenset[str]:
    values = table.get(key, [])
    if not isinstance(values, list):
        raise ConfigError(f"{path}.{key}: must be an array of strings")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ConfigError(f"{path}.{key}[{index}]: must be a string")
        if (reason := rule(value)) is not None:
            raise ConfigError(f"{path}.{key}[{index}]: {reason}")
    return frozenset(values)


def _toml_key(key: str) -> str:
    """*key* as written in a TOML dotted path: bare when it can be, quoted otherwise."""
    if _BARE_TOML_KEY.fullmatch(key):
        return key
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- Operator override -------------------------------------------------------------------------


@implementer(IAnnuaireSource)
class OverrideSource:
    """Ask the operator's *override* first; only when it does not know the AMC, the *fallback*."""

    def __init__(self, override: IAnnuaireSource, fallback: IAnnuaireSource) -> None:
        self._override = override
        self._fallback = fallback

    def lookup(self, key: AmcKey) -> Deferred[AmcEntry | None]:
        def fall_back(entry: AmcEntry | None) -> AmcEntry | Deferred[AmcEntry | None] | None:
            return entry if entry is not None else self._fallback.lookup(key)

        return self._override.lookup(key).addCallback(fall_back)


# -- The ANN web service -----------------------------------------------------------------------


def ann_request(key: AmcKey) -> bytes:
    """The SOAP 1.1 ``DemandeANN`` document asking the annuaire about *key*."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP11_NS}"><soap:Body>'
        f'<ann:DemandeANN xmlns:ann="{ANN_NS}">'
        f"<ann:NumeroAMC>{escape(key.amc_number)}</ann:NumeroAMC>"
        f"<ann:TypeConvention>{escape(key.convention_type)}</ann:TypeConvention>"
        f"<ann:CritereSecondaire>{escape(key.secondary_criterion)}</ann:CritereSecondaire>"
        "</ann:DemandeANN></soap:Body></soap:Envelope>"
    ).encode()


def parse_ann_answer(
    body: bytes, *, allow_http: bool = False, max_bytes: int = MAX_ANSWER_BYTES
) -> AmcEntry | None:
    """The entry a ``ReponseANN`` carries, None for ``CodeRetour`` 01 (unknown AMC).

    Raises ``MalformedAnswer`` for anything else: not XML, a SOAP Fault, another document,
    an invalid AMC number, a non-https endpoint, an unknown service code.
    """
    soap_body = _soap_body(body, max_bytes)
    children = [child for child in soap_body if isinstance(child.tag, str)]
    if len(children) == 1 and children[0].tag == f"{{{SOAP11_NS}}}Fault":
        raise MalformedAnswer(f"SOAP Fault {_fault_code(children[0]) or '(no faultcode)'}")
    if len(children) != 1 or children[0].tag != f"{{{ANN_NS}}}ReponseANN":
        raise MalformedAnswer("SOAP Body does not hold exactly one ReponseANN")
    answer = children[0]
    code = _child_text(answer, "CodeRetour")
    if code == "01":
        return None
    if code != "00":
        shown = code if code is not None and _RETURN_CODE.fullmatch(code) else "(invalid)"
        raise MalformedAnswer(f"unexpected CodeRetour {shown}")
    amc = answer.find(f"{{{ANN_NS}}}AMC")
    if amc is None:
        raise MalformedAnswer("CodeRetour 00 without an AMC element")
    number = _child_text(amc, "Numero") or ""
    if (reason := amc_number_error(number)) is not None:
        raise MalformedAnswer(f"AMC/Numero: {reason}")
    name = _child_text(amc, "Nom") or ""
    if not name:
        raise MalformedAnswer("AMC/Nom is missing or empty")
    endpoints: dict[str, str] = {}
    for service in amc.iterfind(f"{{{ANN_NS}}}Service"):
        code_attr = service.get("code", "")
        version = service.get("version")
        key = f"{code_attr}/{version}" if version is not None else code_attr
        if endpoint_key_error(key) is not None:
            raise MalformedAnswer("AMC/Service: unknown service code or ROC version")
        if key in endpoints:
            raise MalformedAnswer("AMC/Service: the same service is listed twice")
        url = (service.text or "").strip()
        if (problem := endpoint_url_error(url, allow_http=allow_http)) is not None:
            raise MalformedAnswer(f"AMC/Service: {problem}")
        endpoints[key] = url
    return AmcEntry(number, name, endpoints)


def _soap_body(body: bytes, max_bytes: int) -> etree._Element:
    try:
        root = parse_document(body, max_bytes=max_bytes)
    except (MalformedXml, UnsafeXml) as exc:
        raise MalformedAnswer(f"unreadable answer: {exc}") from None
    if root.tag != f"{{{SOAP11_NS}}}Envelope":
        raise MalformedAnswer("answer is not a SOAP 1.1 envelope")
    soap_body = root.find(f"{{{SOAP11_NS}}}Body")
    if soap_body is None:
        raise MalformedAnswer("SOAP envelope has no Body")
    return soap_body


def _child_text(parent: etree._Element, name: str) -> str | None:
    child = parent.find(f"{{{ANN_NS}}}{name}")
    return None if child is None else (child.text or "").strip()


def _fault_code(fault: etree._Element) -> str | None:
    code = fault.findtext("faultcode")
    if code is None:
        return None
    code = code.strip()
    return code if _FAULT_CODE.fullmatch(code) else None


def _soap_fault_code(body: bytes, max_bytes: int) -> str | None:
    """The faultcode of *body* when it is a SOAP 1.1 Fault, else None."""
    try:
        soap_body = _soap_body(body, max_bytes)
    except MalformedAnswer:
        return None
    fault = soap_body.find(f"{{{SOAP11_NS}}}Fault")
    return None if fault is None else (_fault_code(fault) or "(no faultcode)")


@implementer(IAnnuaireSource)
class SoapAnnuaireSource:
    """Ask the national annuaire's ANN web service, through *client* (mutual TLS in production).

    Transport errors and timeouts fail with their own failure; an answer that arrives but
    cannot be used (status other than 200, SOAP Fault, invalid content, oversized) fails with
    ``MalformedAnswer``.
    """

    def __init__(
        self,
        client: IHttpClient,
        url: str,
        timeout: float,
        clock: IReactorTime,
        *,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        allow_http: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._client = client
        self._url = url
        self._timeout = timeout
        self._clock = clock
        self._max_answer_bytes = max_answer_bytes
        self._allow_http = allow_http

    def lookup(self, key: AmcKey) -> Deferred[AmcEntry | None]:
        answer = self._client.post(
            self._url, _ANN_HEADERS, ann_request(key), self._max_answer_bytes
        )
        answer.addTimeout(self._timeout, self._clock)
        answer.addErrback(_too_large)
        return answer.addCallback(self._entry, key)

    def _entry(self, answer: Answer, key: AmcKey) -> AmcEntry | None:
        if answer.status != 200:
            fault = _soap_fault_code(answer.body, self._max_answer_bytes)
            suffix = f" (SOAP Fault {fault})" if fault is not None else ""
            raise MalformedAnswer(f"HTTP status {answer.status}{suffix}")
        entry = parse_ann_answer(
            answer.body, allow_http=self._allow_http, max_bytes=self._max_answer_bytes
        )
        if entry is not None and entry.amc_number != key.amc_number:
            raise MalformedAnswer("answer names another AMC than the one asked for")
        return entry


def _too_large(failure: Failure) -> Answer:
    failure.trap(BodyTooLarge)
    raise MalformedAnswer(failure.getErrorMessage())


_ANN_HEADERS = (
    (b"Content-Type", SOAP11_CONTENT_TYPE.encode()),
    (b"SOAPAction", f'"{soap_action("ANN")}"'.encode()),
)
