"""Reading a request's routing key in the relay: pure functions of the request, no I/O.

Three extractors read the same eight fields from different places (the SOAP header's routing
block, HTTP headers, the URL path) and hand them to the rules both ends share
(``roc.routing.routing_key_from_fields``), so a field breaks the same rule with the same
detail whichever way it came. Failures are ``RpnFailure`` whose detail names the field and the
rule broken, never the value.

Policies are discovered as Twisted plugins (``IRoutingPolicy`` in ``twisted/plugins/``), so a
third party can add one without forking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from twisted.plugin import IPlugin, getPlugins
from zope.interface import implementer

from roc.model import ROUTING_NS, RoutingKey, SoapVersion
from roc.reasons import Reason
from roc.routing import (
    DEFAULT_SOAP_PATHS,
    ROUTING_BLOCK,
    ROUTING_FIELDS,
    RoutingProblem,
    routing_key_from_fields,
    soap_version_of,
)
from rpn._soapheader import RoutingBlockReader
from rpn.errors import RpnError, RpnFailure
from rpn.interfaces import IRoutingExtractor, IRoutingPolicy

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
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_PATH_SEGMENT = re.compile(r"(?:\{([^{}]*)\})?([^\W\d][\w.-]*)")


def _fail(name: str, rule: Reason) -> RpnFailure:
    return RpnFailure(RpnError.ROUTING_UNREADABLE, rule.about(name))


def _routing_key(
    values: Mapping[str, str | None],
    names: Mapping[str, str],
    soap_version: SoapVersion,
    headers: Mapping[str, str],
) -> RoutingKey:
    """``routing_key_from_fields``, its problems as the relay's faults."""
    try:
        return routing_key_from_fields(values, names, soap_version, headers)
    except RoutingProblem as problem:
        error = (
            RpnError.ROUTING_CONTRADICTORY
            if problem.contradictory
            else (RpnError.ROUTING_UNREADABLE)
        )
        raise RpnFailure(error, problem.reason, exchange_id=problem.exchange_id) from None


@dataclass(frozen=True, slots=True)
class RequestView:
    """What an extractor may look at: header names lower-case, first value only, latin-1."""

    path: str
    headers: Mapping[str, str]
    body: bytes


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
        return _routing_key(values, self._reader.names, version, request.headers)


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
        return _routing_key(values, self.header_names, version, headers)


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
        return _routing_key(values, self.names, version, headers)


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
