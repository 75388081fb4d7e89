"""Reading a request's routing key: pure functions of the request, no I/O.

Three extractors read the same eight fields from different places (the SOAP header's routing
block, HTTP headers, the URL path) and share one validation, so a field breaks the same rule
with the same detail whichever way it came. Failures are ``RpnFailure`` whose detail names the
field and the rule broken, never the value.

Policies are discovered as Twisted plugins (``IRoutingPolicy`` in ``twisted/plugins/``), so a
third party can add one without forking.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from lxml import etree
from twisted.plugin import IPlugin, getPlugins
from zope.interface import Attribute, Interface, implementer

from roc._soapheader import RoutingBlockReader
from roc.errors import RpnError, RpnFailure
from roc.identifiers import (
    EXCHANGE_ID_RULE,
    amc_number_error,
    convention_type_error,
    exchange_id_error,
    finess_error,
    secondary_criterion_error,
)
from roc.model import ROUTING_NS, AmcKey, RocVersion, RoutingKey, Service, SoapVersion, soap_action
from roc.reasons import Reason

#: The fields of a routing key, in the order they are validated.
ROUTING_FIELDS = (
    "service",
    "roc_version",
    "amc_number",
    "convention_type",
    "secondary_criterion",
    "sender_finess_legal",
    "sender_finess_site",
    "exchange_id",
)
#: Where each field sits below the routing block by default (docs/roc-model.md).
DEFAULT_SOAP_PATHS: Mapping[str, str] = {
    "service": "Service",
    "roc_version": "VersionROC",
    "amc_number": "AMC/Numero",
    "convention_type": "AMC/TypeConvention",
    "secondary_criterion": "AMC/CritereSecondaire",
    "sender_finess_legal": "Emetteur/FinessJuridique",
    "sender_finess_site": "Emetteur/FinessGeographique",
    "exchange_id": "IdentifiantEchange",
}
#: The HTTP header carrying each field, after the extractor's prefix.
HTTP_HEADER_SUFFIXES: Mapping[str, str] = {
    "service": "service",
    "roc_version": "version",
    "amc_number": "amc",
    "convention_type": "convention",
    "secondary_criterion": "critere",
    "sender_finess_legal": "finess-juridique",
    "sender_finess_site": "finess-geographique",
    "exchange_id": "echange",
}
ROUTING_BLOCK = "Routage"

#: Senders are few (the registered establishments): their FINESS checks are worth keeping.
_finess_error = functools.lru_cache(maxsize=4096)(finess_error)
_SERVICES = {service.value: service for service in Service}
_VERSIONS = {version.value: version for version in RocVersion}
_ACTIONS = {service: soap_action(service) for service in Service}
#: AMC keys already validated, by identifiers (requests name few AMCs); only valid ones are kept.
_AMC_KEYS: dict[tuple[str, str, str], AmcKey] = {}
_MAX_AMC_KEYS = 4096
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_PATH_SEGMENT = re.compile(r"(?:\{([^{}]*)\})?([^\W\d][\w.-]*)")
_MEDIA_PARAM = re.compile(
    r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', re.ASCII
)


@dataclass(frozen=True, slots=True)
class RequestView:
    """What an extractor may look at: header names lower-case, first value only, latin-1."""

    path: str
    headers: Mapping[str, str]
    body: bytes


class IRoutingExtractor(Interface):
    """Reads the routing key of a request."""

    def extract(request: RequestView) -> RoutingKey:
        """The request's routing key.

        Raises ``RpnFailure`` whose detail names the field and the rule broken, never a value.
        """


class IRoutingPolicy(Interface):
    """A named way of building an extractor from configuration (a Twisted plugin)."""

    name = Attribute("The name configuration selects this policy by, e.g. 'soap-header'.")
    description = Attribute("One line saying where this policy reads the routing key.")

    def build(options: Mapping[str, object]) -> IRoutingExtractor:
        """An extractor configured by *options*; ValueError naming a bad or unknown option."""


# Validation shared by every extractor.


def _fail(name: str, rule: Reason) -> RpnFailure:
    return RpnFailure(RpnError.ROUTING_UNREADABLE, rule.about(name))


_MISSING = Reason("missing", "absent")
_EMPTY = Reason("empty", "vide")
_SERVICE_RULE = Reason(
    "must be one of " + ", ".join(service.value for service in Service),
    "doit valoir " + ", ".join(service.value for service in Service),
)
_VERSION_RULE = Reason("must be V1 or V2", "doit valoir V1 ou V2")


def _required(values: Mapping[str, str | None], names: Mapping[str, str], key: str) -> str:
    value = values.get(key)
    if value is None:
        raise _fail(names[key], _MISSING)
    value = value.strip()
    if not value:
        raise _fail(names[key], _EMPTY)
    return value


def _optional(values: Mapping[str, str | None], key: str) -> str:
    value = values.get(key)
    return "" if value is None else value.strip()


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].strip()
    return value


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """The lower-case media type and the parameters of a Content-Type value."""
    if not content_type:
        return "", {}
    media, _, rest = content_type.partition(";")
    params = {
        match.group(1).lower(): _unquote(match.group(2))
        for match in _MEDIA_PARAM.finditer(";" + rest)
    }
    return media.strip().lower(), params


def soap_version_of(content_type: str | None) -> SoapVersion:
    """SOAP 1.2 for ``application/soap+xml``, else SOAP 1.1."""
    media, _ = _media_type(content_type)
    return SoapVersion.SOAP12 if media == "application/soap+xml" else SoapVersion.SOAP11


def check_soap_action(headers: Mapping[str, str], service: Service, service_name: str) -> None:
    """Refuse a SOAPAction (or SOAP 1.2 ``action`` parameter) naming another service.

    An empty action states nothing (SOAP 1.1: the intent is the request URI) and is accepted.
    """
    expected = _ACTIONS[service]
    action = headers.get("soapaction")
    if action is not None:
        stated = _unquote(action)
        if stated and stated != expected:
            raise RpnFailure(
                RpnError.ROUTING_CONTRADICTORY,
                f"SOAPAction: does not name the service given by {service_name}",
                f"SOAPAction : ne désigne pas le service donné par {service_name}",
            )
    content_type = headers.get("content-type")
    if content_type is None or "action" not in content_type.lower():
        return
    stated = _media_type(content_type)[1].get("action", "")
    if stated and stated != expected:
        raise RpnFailure(
            RpnError.ROUTING_CONTRADICTORY,
            f"Content-Type action: does not name the service given by {service_name}",
            f"paramètre action du Content-Type : ne désigne pas le service donné par "
            f"{service_name}",
        )


def _amc_key(values: Mapping[str, str | None], names: Mapping[str, str]) -> AmcKey:
    """The AMC identifiers of *values*, or the failure for the first rule they break."""
    amc_number = _required(values, names, "amc_number")
    convention = values.get("convention_type")
    criterion = _optional(values, "secondary_criterion")
    if convention is not None:
        known = _AMC_KEYS.get((amc_number, convention.strip(), criterion))
        if known is not None:
            return known
    reason = amc_number_error(amc_number)
    if reason is not None:
        raise _fail(names["amc_number"], reason)
    convention = _required(values, names, "convention_type")
    if (reason := convention_type_error(convention)) is not None:
        raise _fail(names["convention_type"], reason)
    if (reason := secondary_criterion_error(criterion)) is not None:
        raise _fail(names["secondary_criterion"], reason)
    if len(_AMC_KEYS) >= _MAX_AMC_KEYS:
        _AMC_KEYS.clear()
    key = _AMC_KEYS[amc_number, convention, criterion] = AmcKey(amc_number, convention, criterion)
    return key


def _sender_finess(values: Mapping[str, str | None], names: Mapping[str, str], key: str) -> str:
    finess = _required(values, names, key)
    reason = _finess_error(finess)
    if reason is not None:
        raise _fail(names[key], reason)
    return finess


def routing_key_from_fields(
    values: Mapping[str, str | None],
    names: Mapping[str, str],
    soap_version: SoapVersion,
    headers: Mapping[str, str],
) -> RoutingKey:
    """Validate raw field texts (None when absent) into a routing key.

    *names* says how each field is named in failure details (a path, a header name);
    *headers* are checked for a SOAPAction naming another service. Both sender FINESS
    numbers are required (the legal entity and the site: the relay checks the pair against
    its registration, the simulator its sandbox). A failure carries the exchange id when it
    could be read, so that the establishment can match the fault to its message.
    """
    exchange_id = (values.get("exchange_id") or "").strip()
    readable_id = "" if exchange_id_error(exchange_id) else exchange_id
    try:
        service = _SERVICES.get(_required(values, names, "service"))
        if service is None:
            raise _fail(names["service"], _SERVICE_RULE)
        version = _VERSIONS.get(_required(values, names, "roc_version"))
        if version is None:
            raise _fail(names["roc_version"], _VERSION_RULE)
        amc = _amc_key(values, names)
        legal = _sender_finess(values, names, "sender_finess_legal")
        site = _sender_finess(values, names, "sender_finess_site")
        _required(values, names, "exchange_id")
        if not readable_id:
            raise _fail(names["exchange_id"], EXCHANGE_ID_RULE)
        check_soap_action(headers, service, names["service"])
    except RpnFailure as failure:
        failure.exchange_id = readable_id
        raise
    # Positional, in RoutingKey's field order: cheaper, and every request comes this way.
    return RoutingKey(service, version, amc, legal, site, readable_id, soap_version)


#: How each field is named in failures about a routing block read whole (``Routage/AMC/Numero``).
BLOCK_FIELD_NAMES: Mapping[str, str] = {
    key: f"{ROUTING_BLOCK}/{path}" for key, path in DEFAULT_SOAP_PATHS.items()
}


def routing_key_from_block(
    texts: Mapping[str, str | None], soap_version: SoapVersion
) -> RoutingKey:
    """The routing key of a routing block already read as a tree (Mutuelle ANS's way).

    *texts* maps each path below the block (``AMC/Numero``, as in ``DEFAULT_SOAP_PATHS``) to
    the element's text, None when the element is absent or holds elements. The same rules as
    every extractor's, with fields named ``Routage/<path>``; a missing ``CritereSecondaire``
    is an empty one, as for the relay (docs/roc-model.md).
    """
    values = {key: texts.get(path) for key, path in DEFAULT_SOAP_PATHS.items()}
    return routing_key_from_fields(values, BLOCK_FIELD_NAMES, soap_version, {})


def _field_texts(key: RoutingKey) -> dict[str, str]:
    return {
        "service": key.service.value,
        "roc_version": key.roc_version.value,
        "amc_number": key.amc.amc_number,
        "convention_type": key.amc.convention_type,
        "secondary_criterion": key.amc.secondary_criterion,
        "sender_finess_legal": key.sender_finess_legal,
        "sender_finess_site": key.sender_finess_site,
        "exchange_id": key.exchange_id,
    }


def routing_block(key: RoutingKey) -> etree._Element:
    """The ``Routage`` header block naming *key*, at the default paths (clients, examples)."""
    block = etree.Element(f"{{{ROUTING_NS}}}{ROUTING_BLOCK}", nsmap={"rt": ROUTING_NS})
    texts = _field_texts(key)
    for field in ROUTING_FIELDS:
        parent = block
        *parents, leaf = DEFAULT_SOAP_PATHS[field].split("/")
        for name in parents:
            found = parent.find(f"{{{ROUTING_NS}}}{name}")
            parent = (
                found if found is not None else etree.SubElement(parent, f"{{{ROUTING_NS}}}{name}")
            )
        etree.SubElement(parent, f"{{{ROUTING_NS}}}{leaf}").text = texts[field]
    return block


# Extractors.


def _clark_path(key: str, path: object) -> tuple[str, ...]:
    """*path* ("AMC/Numero", "{urn:x}AMC/Numero") as Clark tags; bare names are ROUTING_NS."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"routing path {key!r}: must be a non-empty string")
    tags: list[str] = []
    pos = 0
    while True:
        match = _PATH_SEGMENT.match(path, pos)
        if match is None:
            raise ValueError(
                f"routing path {key!r}: must be element names separated by '/', "
                "each a bare name (routing namespace) or {namespace}name"
            )
        namespace, local = match.groups()
        namespace = ROUTING_NS if namespace is None else namespace
        tags.append(f"{{{namespace}}}{local}" if namespace else local)
        pos = match.end()
        if pos == len(path):
            return tuple(tags)
        if path[pos] != "/":
            raise ValueError(f"routing path {key!r}: unexpected character after an element name")
        pos += 1


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: must be a positive integer")
    return value


@implementer(IRoutingExtractor)
class SoapHeaderExtractor:
    """Reads the routing block of the SOAP header with a bounded streaming parse.

    Only the bytes up to the end of the SOAP Header are parsed; the body never is.
    *paths* overrides where fields sit below ``Routage`` (see ``DEFAULT_SOAP_PATHS``);
    *max_header_bytes* bounds the bytes from the start of the message to the end of the
    header, *max_depth* the element nesting counted from the Envelope, *chunk_size* each feed
    of the streaming read (the one that reads unusual headers and decides refusals).

    An extractor learns the markup of the headers it reads (a bounded number), so that a header
    with a known markup is read without a parse; it may be shared between threads.
    """

    def __init__(
        self,
        paths: Mapping[str, str] | None = None,
        max_header_bytes: int = 65536,
        max_depth: int = 32,
        chunk_size: int = 4096,
    ) -> None:
        merged = dict(DEFAULT_SOAP_PATHS)
        for key, path in (paths or {}).items():
            if key not in DEFAULT_SOAP_PATHS:
                raise ValueError(
                    f"routing path {key!r}: not a routing field; known: {', '.join(ROUTING_FIELDS)}"
                )
            merged[key] = path
        fields: dict[tuple[str, ...], str] = {}
        for key, path in merged.items():
            tags = _clark_path(key, path)
            if tags in fields:
                raise ValueError(f"routing path {key!r}: same element as {fields[tags]!r}")
            fields[tags] = key
        for tags, key in fields.items():
            for other, other_key in fields.items():
                if len(other) > len(tags) and other[: len(tags)] == tags:
                    raise ValueError(f"routing path {key!r}: contains the path of {other_key!r}")
        _positive("max_header_bytes", max_header_bytes)
        _positive("chunk_size", chunk_size)
        # Envelope, Header and the routing block come before the deepest field.
        needed = 3 + max(len(tags) for tags in fields)
        if _positive("max_depth", max_depth) < needed:
            raise ValueError(f"max_depth: must be at least {needed} to reach the routing paths")
        self.paths: Mapping[str, str] = merged
        self._reader = RoutingBlockReader(
            block_tag=f"{{{ROUTING_NS}}}{ROUTING_BLOCK}",
            block_name=ROUTING_BLOCK,
            fields=fields,
            names=merged,
            max_header_bytes=max_header_bytes,
            max_depth=max_depth,
            chunk_size=chunk_size,
        )

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> SoapHeaderExtractor:
        """Options: ``paths`` (a table of field to path), ``max_header_bytes``, ``max_depth``."""
        _check_options("soap-header", options, ("paths", "max_header_bytes", "max_depth"))
        paths = options.get("paths", {})
        if not isinstance(paths, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in paths.items()
        ):
            raise ValueError("paths: must be a table of field names to paths")
        return cls(
            paths=paths,
            max_header_bytes=_positive("max_header_bytes", options.get("max_header_bytes", 65536)),
            max_depth=_positive("max_depth", options.get("max_depth", 32)),
        )

    def extract(self, request: RequestView) -> RoutingKey:
        version, values = self._reader.read(request.body)
        return routing_key_from_fields(values, self._reader.names, version, request.headers)


def _header_names(prefix: str) -> dict[str, str]:
    prefix = prefix.lower()
    if not _HEADER_NAME.fullmatch(prefix):
        raise ValueError("prefix: must be a non-empty HTTP header name prefix")
    return {key: prefix + suffix for key, suffix in HTTP_HEADER_SUFFIXES.items()}


@implementer(IRoutingExtractor)
class HttpHeaderExtractor:
    """Reads the routing key from ``x-roc-*`` HTTP headers; the SOAP version from Content-Type."""

    def __init__(self, prefix: str = "x-roc-") -> None:
        self.header_names: Mapping[str, str] = _header_names(prefix)

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> HttpHeaderExtractor:
        """Options: ``prefix`` of the header names."""
        _check_options("http-header", options, ("prefix",))
        return cls(prefix=_string("prefix", options.get("prefix", "x-roc-")))

    def extract(self, request: RequestView) -> RoutingKey:
        headers = request.headers
        values = {key: headers.get(name) for key, name in self.header_names.items()}
        version = soap_version_of(headers.get("content-type"))
        return routing_key_from_fields(values, self.header_names, version, headers)


#: The path's segments, in order, and their names in failure details.
_PATH_SEGMENTS = {
    "roc_version": "path <version>",
    "service": "path <service>",
    "amc_number": "path <amc>",
    "convention_type": "path <convention>",
    "secondary_criterion": "path <criterion>",
}


@implementer(IRoutingExtractor)
class UrlPathExtractor:
    """Reads ``/roc/<version>/<service>/<amc>/<convention>/<criterion>``.

    The sender's FINESS and the exchange id come from the HTTP headers ``HttpHeaderExtractor``
    reads; the criterion segment may be empty or left out.
    """

    def __init__(self, prefix: str = "/roc/", header_prefix: str = "x-roc-") -> None:
        if not prefix.startswith("/") or not prefix.endswith("/"):
            raise ValueError("prefix: must start and end with '/'")
        self.prefix = prefix
        names = _header_names(header_prefix)
        names.update(_PATH_SEGMENTS)
        self.names: Mapping[str, str] = names
        self._shape = f"{prefix}<version>/<service>/<amc>/<convention>/<criterion>"

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> UrlPathExtractor:
        """Options: ``prefix`` of the path, ``header_prefix`` of the HTTP header names."""
        _check_options("url-path", options, ("prefix", "header_prefix"))
        return cls(
            prefix=_string("prefix", options.get("prefix", "/roc/")),
            header_prefix=_string("header_prefix", options.get("header_prefix", "x-roc-")),
        )

    def extract(self, request: RequestView) -> RoutingKey:
        path = request.path.partition("?")[0]
        if not path.startswith(self.prefix):
            raise RpnFailure(
                RpnError.NOT_FOUND,
                f"path: not under {self.prefix}",
                f"chemin : hors de {self.prefix}",
            )
        segments = path[len(self.prefix) :].split("/")
        if len(segments) == 4:
            segments.append("")
        if len(segments) != 5:
            raise _fail("path", Reason(f"must be {self._shape}", f"doit être {self._shape}"))
        headers = request.headers
        values: dict[str, str | None] = dict(zip(_PATH_SEGMENTS, segments, strict=True))
        for key in ("sender_finess_legal", "sender_finess_site", "exchange_id"):
            values[key] = headers.get(self.names[key])
        version = soap_version_of(headers.get("content-type"))
        return routing_key_from_fields(values, self.names, version, headers)


# Policies as plugins.


def _check_options(policy: str, options: Mapping[str, object], known: Collection[str]) -> None:
    for key in options:
        if key not in known:
            raise ValueError(
                f"routing policy {policy!r}: unknown option {key!r}; known: {', '.join(known)}"
            )


def _string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: must be a string")
    return value


@implementer(IPlugin, IRoutingPolicy)
@dataclass(frozen=True)
class RoutingPolicy:
    """A routing policy a dropin in ``twisted/plugins/`` declares."""

    name: str
    description: str
    builder: Callable[[Mapping[str, object]], IRoutingExtractor]

    def build(self, options: Mapping[str, object]) -> IRoutingExtractor:
        return self.builder(options)


def routing_policies() -> dict[str, IRoutingPolicy]:
    """Every routing policy installed, by name; ValueError if two share a name."""
    found: dict[str, IRoutingPolicy] = {}
    for policy in getPlugins(IRoutingPolicy):
        known = found.get(policy.name)
        if known is not None and known is not policy:
            raise ValueError(f"two routing policies are named {policy.name!r}")
        found[policy.name] = policy
    return dict(sorted(found.items()))


def build_extractor(name: str, options: Mapping[str, object] | None = None) -> IRoutingExtractor:
    """The extractor of the policy called *name*; ValueError for an unknown name or option."""
    policies = routing_policies()
    policy = policies.get(name)
    if policy is None:
        raise ValueError(f"unknown routing policy {name!r}; known: {', '.join(policies)}")
    extractor = policy.build(options or {})
    if not IRoutingExtractor.providedBy(extractor):
        raise TypeError(f"routing policy {name!r} built something that is not an extractor")
    return extractor
