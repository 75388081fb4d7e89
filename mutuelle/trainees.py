"""Trainees apart: a sandbox per trainee inside an establishment's.

A training room shares one certificate (the establishment's), so the trainee is named by the
message or the path, never by TLS:

- a SOAP header element ``<f:Stagiaire xmlns:f="urn:piano:mutuelle:formation">poste-03
  </f:Stagiaire>`` next to the routing block. This is the form that works **through the
  relay**: the relay forwards the body byte for byte and adds no client header upstream, so a
  header element is the one thing a hospital's software sends that reaches the simulator
  unchanged. It is outside what a request's XML signature covers (the Body and the routing
  block), so adding it never breaks a signature;
- a path ``/bac/<FINESS>/<trainee>/roc/<SERVICE>``, for tools calling the simulator directly
  that cannot add a SOAP header (the FINESS of a certificate still wins over the path's).

The trainee's sandbox is named ``<establishment>.<trainee>``: its identifications,
engagements, invoices, journal and clock are its own, stored like any sandbox (no new stored
state). Without a trainee, the establishment's sandbox is as before. A trainee name is a seat
or group label (``poste-03``), never a person's name: it appears in sandbox names and journals.
Pure: no I/O.
"""

from __future__ import annotations

import re

from lxml import etree

from roc.xmlsafe import MalformedXml, UnsafeXml, parse_document

TRAINEE_NS = "urn:piano:mutuelle:formation"
TRAINEE_ELEMENT = "Stagiaire"
#: Between an establishment's sandbox name and its trainee's.
SEPARATOR = "."
_TRAINEE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}\Z")
_MARKER = TRAINEE_ELEMENT.encode()


class BadTrainee(ValueError):
    """A trainee name that is not one; the message is French, for the trainee."""


def trainee_error(name: str) -> str | None:
    """Why *name* is not a trainee name (French), or None."""
    if _TRAINEE.match(name):
        return None
    return (
        "le nom de stagiaire doit faire 1 à 32 caractères : minuscules, chiffres et tirets "
        "(un poste, par exemple poste-03, jamais le nom d'une personne)"
    )


def trainee_sandbox(establishment: str, trainee: str | None) -> str:
    """The sandbox *trainee* plays in, within *establishment*'s (itself without a trainee)."""
    if trainee is None:
        return establishment
    problem = trainee_error(trainee)
    if problem is not None:
        raise BadTrainee(problem)
    return f"{establishment}{SEPARATOR}{trainee}"


def split_sandbox(name: str) -> tuple[str, str | None]:
    """(establishment, trainee or None) of a sandbox name."""
    establishment, _, trainee = name.partition(SEPARATOR)
    return establishment, trainee or None


def trainee_of_body(body: bytes) -> str | None:
    """The ``Stagiaire`` SOAP header's value, or None; a bad one raises BadTrainee.

    Only a body mentioning ``Stagiaire`` is parsed here; one that does not parse is left to the
    simulator, which answers its own precise fault.
    """
    if _MARKER not in body:
        return None
    try:
        root = parse_document(body)
    except (MalformedXml, UnsafeXml):
        return None
    children = [c for c in root if isinstance(c.tag, str)]
    if not children or etree.QName(children[0]).localname != "Header":
        return None
    found = children[0].find(f"{{{TRAINEE_NS}}}{TRAINEE_ELEMENT}")
    if found is None:
        return None
    name = (found.text or "").strip()
    problem = trainee_error(name)
    if problem is not None:
        raise BadTrainee(problem)
    return name


def trainee_header(trainee: str) -> etree._Element:
    """The ``Stagiaire`` SOAP header element naming *trainee* (clients, tests)."""
    problem = trainee_error(trainee)
    if problem is not None:
        raise BadTrainee(problem)
    element = etree.Element(f"{{{TRAINEE_NS}}}{TRAINEE_ELEMENT}", nsmap={"f": TRAINEE_NS})
    element.text = trainee
    return element
