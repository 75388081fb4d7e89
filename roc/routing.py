"""The routing key's rules, for both ends: its fields, where they sit, how each is checked.

Pure functions, no I/O. The relay reads the fields with its own extractors (``rpn.routing``:
the SOAP header's routing block read by a bounded streaming parse, HTTP headers, the URL
path), Mutuelle ANS from its parsed document (``routing_key_from_block``); both hand the texts
to ``routing_key_from_fields``, so a field breaks the same rule with the same reason at both
ends. Failures are ``RoutingProblem`` whose reason names the field and the rule broken, never
the value. Clients build the block with ``routing_block``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from lxml import etree

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
ROUTING_BLOCK = "Routage"

#: Senders are few (the registered establishments): their FINESS checks are worth keeping.
_finess_error = functools.lru_cache(maxsize=4096)(finess_error)
_SERVICES = {service.value: service for service in Service}
_VERSIONS = {version.value: version for version in RocVersion}
_ACTIONS = {service: soap_action(service) for service in Service}
#: AMC keys already validated, by identifiers (requests name few AMCs); only valid ones are kept.
_AMC_KEYS: dict[tuple[str, str, str], AmcKey] = {}
_MAX_AMC_KEYS = 4096
_MEDIA_PARAM = re.compile(
    r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', re.ASCII
)


# Validation shared by every extractor.


class RoutingProblem(ValueError):
    """A routing key that cannot be read: *reason* names the field and the rule it breaks.

    *contradictory* when every field is valid but the request's SOAPAction (or Content-Type
    ``action``) names another service; *exchange_id* is the message's exchange id when it
    could be read, so that the establishment can match the refusal to its message. Never a
    value the message carried, but for that exchange id.
    """

    def __init__(self, reason: Reason, *, contradictory: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.contradictory = contradictory
        self.exchange_id = ""


def _fail(name: str, rule: Reason) -> RoutingProblem:
    return RoutingProblem(rule.about(name))


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
            raise RoutingProblem(
                Reason(
                    f"SOAPAction: does not name the service given by {service_name}",
                    f"SOAPAction : ne désigne pas le service donné par {service_name}",
                ),
                contradictory=True,
            )
    content_type = headers.get("content-type")
    if content_type is None or "action" not in content_type.lower():
        return
    stated = _media_type(content_type)[1].get("action", "")
    if stated and stated != expected:
        raise RoutingProblem(
            Reason(
                f"Content-Type action: does not name the service given by {service_name}",
                f"paramètre action du Content-Type : ne désigne pas le service donné par "
                f"{service_name}",
            ),
            contradictory=True,
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
    except RoutingProblem as problem:
        problem.exchange_id = readable_id
        raise
    # Positional, in RoutingKey's field order: cheaper, and every request comes this way.
    return RoutingKey(service, version, amc, legal, site, readable_id, soap_version)


_RT = "{" + ROUTING_NS + "}"
#: Blocks of the routing block whose children are read (``AMC/Numero``...).
_NESTED = frozenset({"AMC", "Emetteur"})


def _leaf_text(node: etree._Element) -> str | None:
    """The stripped text of *node*, None when it holds elements (not a leaf)."""
    for child in node:
        if isinstance(child.tag, str):
            return None
    return (node.text or "").strip()


def block_texts(routage: etree._Element) -> dict[str, str | None]:
    """Path (``Service``, ``AMC/Numero``) -> text of the first element at that path, read in
    one pass over the block; None for an element that is not a leaf."""
    out: dict[str, str | None] = {}
    for child in routage:
        tag = child.tag
        if not isinstance(tag, str) or not tag.startswith(_RT):
            continue
        name = tag[len(_RT) :]
        if name in out:
            continue
        out[name] = _leaf_text(child)
        if name in _NESTED:
            for grandchild in child:
                inner = grandchild.tag
                if isinstance(inner, str) and inner.startswith(_RT):
                    out.setdefault(f"{name}/{inner[len(_RT) :]}", _leaf_text(grandchild))
    return out


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
    return routing_block_of_texts(_field_texts(key))


def routing_block_of_texts(texts: Mapping[str, str]) -> etree._Element:
    """The ``Routage`` block holding *texts* (field -> text, any text: tests send invalid
    ones), each at its default path; a field left out of *texts* is left out of the block."""
    block = etree.Element(f"{{{ROUTING_NS}}}{ROUTING_BLOCK}", nsmap={"rt": ROUTING_NS})
    for field in ROUTING_FIELDS:
        if field not in texts:
            continue
        parent = block
        *parents, leaf = DEFAULT_SOAP_PATHS[field].split("/")
        for name in parents:
            found = parent.find(f"{{{ROUTING_NS}}}{name}")
            parent = (
                found if found is not None else etree.SubElement(parent, f"{{{ROUTING_NS}}}{name}")
            )
        etree.SubElement(parent, f"{{{ROUTING_NS}}}{leaf}").text = texts[field]
    return block
