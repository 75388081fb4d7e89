"""The project's XSDs (``roc/schemas/``), loaded once, and validation with safe messages.

The simulator validates every request body against its service's schema, so a publisher
learns exactly which element is wrong. lxml's messages quote the offending value for facet
and type errors; those are replaced by a generic reason so that no personal data reaches a
fault or a log. Reasons are in French (hospitals read them), element names as they are.
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from typing import Any

from lxml import etree

from roc.xmlsafe import safe_parser

#: Schema file of each service's body, and of the routing block and fault details.
SCHEMA_FILES = {
    "IDB": "roc-idb.xsd",
    "SIM": "roc-sim.xsd",
    "CLC": "roc-clc.xsd",
    "DEL": "roc-del.xsd",
    "ANN": "roc-ann.xsd",
    "DRE": "roc-dre.xsd",
    "ROUTAGE": "roc-routage.xsd",
    "RPN_ERREURS": "rpn-erreurs.xsd",
    "MUTUELLE_ERREURS": "mutuelle-erreurs.xsd",
}
WSDL_FILE = "roc.wsdl"
#: The billing service's WSDL (DRE: invoices and their returns; never through the relay).
BILLING_WSDL_FILE = "roc-facturation.wsdl"

#: lxml error types whose message names elements or attributes only, never a value.
_STRUCTURAL = frozenset(
    {
        "SCHEMAV_ELEMENT_CONTENT",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_3",
        "SCHEMAV_CVC_COMPLEX_TYPE_2_4",
        "SCHEMAV_CVC_COMPLEX_TYPE_3_2_1",
        "SCHEMAV_CVC_COMPLEX_TYPE_3_2_2",
        "SCHEMAV_CVC_COMPLEX_TYPE_4",
        "SCHEMAV_CVC_ELT_1",
    }
)
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*:")
_CLARK = re.compile(r"\{[^}]*\}")
_ELEMENT_PREFIX = re.compile(r"^Element '[^']*'(?:, attribute '[^']*')?: ")


def schema_text(name: str) -> bytes:
    """The bytes of a file of ``roc/schemas/`` (an XSD or the WSDL)."""
    return resources.files("roc.schemas").joinpath(name).read_bytes()


_compiled = threading.local()


def schema(key: str) -> etree.XMLSchema:
    """The compiled schema for *key* (a service code or a key of ``SCHEMA_FILES``).

    One per thread: a schema keeps the error log of its last validation, and exchanges are
    validated in the storage's threads (``mutuelle.dbpool``), several at once on PostgreSQL.
    """
    cache: dict[str, etree.XMLSchema] | None = getattr(_compiled, "schemas", None)
    if cache is None:
        cache = _compiled.schemas = {}
    found = cache.get(key)
    if found is None:
        name = SCHEMA_FILES[key]
        document = etree.fromstring(schema_text(name), parser=safe_parser(), base_url=name)
        found = cache[key] = etree.XMLSchema(document)
    return found


def _path(entry: Any) -> str:
    return _PREFIX.sub("", entry.path or "").lstrip("/") or "(root)"


#: lxml's structural messages (English) -> French; ``{0}`` is the element or attribute list.
_FRENCH = (
    (
        re.compile(r"This element is not expected\. Expected is one of \( (.*) \)"),
        "élément inattendu ; attendu : l'un de {0}",
    ),
    (
        re.compile(r"This element is not expected\. Expected is \( (.*) \)"),
        "élément inattendu ; attendu : {0}",
    ),
    (re.compile(r"This element is not expected"), "élément inattendu"),
    (
        re.compile(r"Missing child element\(s\)\. Expected is one of \( (.*) \)"),
        "élément enfant manquant ; attendu : l'un de {0}",
    ),
    (
        re.compile(r"Missing child element\(s\)\. Expected is \( (.*) \)"),
        "élément enfant manquant ; attendu : {0}",
    ),
    (
        re.compile(r"Character content other than whitespace is not allowed"),
        "texte non permis : cet élément ne contient que des éléments",
    ),
    (re.compile(r"The attribute '([^']*)' is not allowed"), "attribut {0} non permis"),
    (re.compile(r"The attribute '([^']*)' is required but missing"), "attribut {0} requis"),
    (
        re.compile(r"No matching global declaration available"),
        "élément racine non déclaré par le schéma",
    ),
)
VALUE_REASON = "valeur non conforme au schéma (type, motif ou codes permis)"


def _reason(entry: Any) -> str:
    if entry.type_name not in _STRUCTURAL:
        return VALUE_REASON
    english = _ELEMENT_PREFIX.sub("", _CLARK.sub("", entry.message)).rstrip(".")
    for pattern, french in _FRENCH:
        match = pattern.search(english)
        if match:
            return french.format(*match.groups())
    return "structure non conforme au schéma"


def validation_error(element: etree._Element, key: str) -> str | None:
    """Why *element* is not valid against schema *key*, naming the element, or None."""
    checker = schema(key)
    if checker.validate(element):
        return None
    errors: Any = checker.error_log  # lxml-stubs leave _ErrorLog empty
    entry = errors[0]
    return f"{_path(entry)} : {_reason(entry)}"


def validation_errors(element: etree._Element, key: str, limit: int = 10) -> list[tuple[str, str]]:
    """Every (element path, reason) breaking schema *key*, at most *limit*; [] when valid."""
    checker = schema(key)
    if checker.validate(element):
        return []
    errors: Any = checker.error_log
    return [(_path(entry), _reason(entry)) for entry in list(errors)[:limit]]
