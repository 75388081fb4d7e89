"""Reading the routing block in a SOAP header, bounded (private to ``roc.routing``).

Only the bytes up to the end of the SOAP ``Header`` (or the start of the ``Body`` when no
header comes first) are read, so the body is never parsed: the relay forwards it untouched, and
malformed or hostile content there costs nothing here. Three reads give one answer, from the
cheapest to the most general:

- a **known shape**: a header with the markup of one already read as a tree, and plain texts,
  has that header's tree with other texts: each field's text is taken from its place, with no
  parse (see ``rpn._soapshape``);
- a **tree**: the screened bytes are parsed in one go by a reused parser, and the tree is
  checked for the one layout that yields a routing key (see ``RoutingBlockReader._read_tree``);
- the **streaming read**, which follows the parse event by event and decides every refusal.

The first two answer only where the streaming read would give that very answer, and leave every
other message (refusals included) to it.

One lxml behaviour shapes the code. With ``resolve_entities=False`` lxml does not raise on an
undefined entity; it ends the parse silently and a later ``feed`` starts a new document. So
every fed segment is first screened for DTDs and for ``&`` that does not start a predefined or
character reference (a literal ``&`` in a comment or CDATA section of the header is refused
too: the screen does not parse), and the envelope, header and routing block are checked by
identity so that events from a restarted parse can never complete a routing key (the tree read
feeds once: a silent end leaves its document unfinished, which close() refuses). For the
screens to see bytes as characters, the message must be in UTF-8 or another ASCII-based
encoding (UTF-16 and UTF-7, among others, are refused).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from lxml import etree

from roc.model import SOAP11_NS, SOAP12_NS, SoapVersion
from rpn._soapshape import Found, KnownShapes, cut, markup
from rpn.errors import RpnError, RpnFailure

#: Where a fed segment may end: a closing tag named ``Header`` (any prefix) or, before it, the
#: start tag of a ``Body``. A false candidate (in a comment, another namespace) means feeding on.
_HEADER_END = re.compile(rb"</((?:[^\s<>/:]+:)?)Header\s*>")
_BODY_START = re.compile(rb"<(?:[^\s<>/:!?]+:)?Body(?:[\s/][^<>]*)?>")
#: What is refused before it reaches the parser: any DTD or entity declaration, and any ``&``
#: that does not start a predefined entity or a character reference.
_FORBIDDEN = re.compile(
    rb"<!DOCTYPE|<!ENTITY|&(?!(?:lt|gt|amp|apos|quot|#[0-9]{1,8}|#x[0-9A-Fa-f]{1,8});)"
)
#: How far past a segment's end the screen looks, so a reference cut by the end is whole.
_SCREEN_OVERLAP = 16
_UTF8_BOM = b"\xef\xbb\xbf"
_FIRST_BYTE = re.compile(rb"[^ \t\r\n]")
_ENCODING_DECL = re.compile(rb"<\?xml\s[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
#: Encodings in which the byte screens read '<' and '&' as they are (so not UTF-7).
_ASCII_BASED = re.compile(
    rb"(?i)utf-?8|(?:us-)?ascii|iso[-_]?8859-[0-9]{1,2}|latin-?[0-9]|(?:windows|cp)-?125[0-8]"
)
#: Only "start" and "end" events of elements are asked for.
_Events = Iterator[tuple[str, etree._Element]]
_EVENTS: tuple[Literal["start"], Literal["end"]] = ("start", "end")
#: libxml2 error codes by number, for details that name the broken rule and nothing else.
_XML_ERROR_NAMES = {
    value: name for name, value in vars(etree.ErrorTypes).items() if isinstance(value, int)
}
#: A read that does not settle the message, which the next way of reading then takes.
_UNSETTLED = None
#: A trie of field paths: each tag leads to a field's key or to the next level.
_Trie = dict[object, "str | _Trie"]


@dataclass(frozen=True, slots=True)
class _Envelope:
    version: SoapVersion
    header_tag: str
    body_tag: str


_ENVELOPES = {
    f"{{{ns}}}Envelope": _Envelope(version, f"{{{ns}}}Header", f"{{{ns}}}Body")
    for ns, version in ((SOAP11_NS, SoapVersion.SOAP11), (SOAP12_NS, SoapVersion.SOAP12))
}


def _unreadable(detail: str, detail_fr: str) -> RpnFailure:
    return RpnFailure(RpnError.ROUTING_UNREADABLE, detail, detail_fr)


def _forbidden(detail: str, detail_fr: str) -> RpnFailure:
    return RpnFailure(RpnError.XML_FORBIDDEN, detail, detail_fr)


_DTD_REFUSED = (
    "DTD and entity declarations are refused",
    "les déclarations de DTD et d'entités sont refusées",
)


def _broken() -> RpnFailure:
    # The parse ended silently and restarted (see the module docstring).
    return _forbidden(
        "not well-formed XML: the parse of the SOAP Header was interrupted",
        "XML mal formé : la lecture de l'en-tête SOAP a été interrompue",
    )


def _syntax_failure(exc: etree.LxmlError) -> RpnFailure:
    """A detail naming libxml2's rule and position only: its text may quote the document."""
    code = getattr(exc, "code", None)
    rule = _XML_ERROR_NAMES.get(code, "syntax error") if isinstance(code, int) else "syntax error"
    position = getattr(exc, "position", None)
    where = where_fr = ""
    if isinstance(position, tuple) and len(position) == 2:
        where = f" at line {position[0]}, column {position[1]}"
        where_fr = f" ligne {position[0]}, colonne {position[1]}"
    return _forbidden(
        f"not well-formed XML ({rule}){where}", f"XML mal formé (règle {rule}){where_fr}"
    )


def _check_start(body: bytes) -> None:
    """Refuse what the byte screens cannot read: empty bodies and non-ASCII-based encodings."""
    start = len(_UTF8_BOM) if body.startswith(_UTF8_BOM) else 0
    if not body.startswith(b"<", start):
        first = _FIRST_BYTE.search(body, start)
        if first is None:
            raise _forbidden(
                "not well-formed XML: the message is empty", "XML mal formé : le message est vide"
            )
        start = first.start()
    if body[start] != 0x3C or body.find(b"\x00", start, start + 4) >= 0:
        raise _forbidden(
            "not well-formed XML: the message must be UTF-8 XML starting with '<'",
            "XML mal formé : le message doit être du XML UTF-8 commençant par « < »",
        )
    declared = _ENCODING_DECL.match(body, start)
    if declared is not None and not _ASCII_BASED.fullmatch(declared.group(1)):
        raise _forbidden(
            "the XML declaration must name UTF-8 or an ASCII-based encoding",
            "la déclaration XML doit indiquer UTF-8 ou un codage fondé sur ASCII",
        )


def _screen(body: bytes, start: int, stop: int) -> None:
    # What the screen refuses starts with '&' or '<!': most headers have neither.
    if body.find(b"&", start, stop) < 0 and body.find(b"!", start + 1, stop + 1) < 0:
        return
    found = _FORBIDDEN.search(body, start, min(len(body), stop + _SCREEN_OVERLAP))
    if found is None or found.start() >= stop:
        return
    if found.group().startswith(b"<!"):
        raise _forbidden(*_DTD_REFUSED)
    raise _forbidden(
        "entity references other than the predefined ones are refused "
        "(a '&' must start one of the five predefined entities or a character reference)",
        "seules les entités prédéfinies sont acceptées (un « & » doit commencer l'une des "
        "cinq entités prédéfinies ou une référence de caractère)",
    )


#: Each thread's parser for tree reads, reused from read to read (lxml resets it on close()).
_PARSERS = threading.local()


@functools.lru_cache(maxsize=16)
def _too_deep(max_depth: int) -> etree.XPath:
    """Whether an element below a Header (at depth 2) is nested deeper than *max_depth*."""
    return etree.XPath("boolean(" + "/".join(["*"] * max(1, max_depth - 1)) + ")")


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _segment_end(body: bytes, pos: int, limit: int) -> tuple[int, re.Match[bytes] | None]:
    """Where the segment from *pos* ends, and the Header end tag ending it (if one does).

    A segment ends after the first Header end tag (any prefix) or, before it, the start tag
    of a Body; a false candidate (in a comment, another namespace) means feeding on.
    """
    found = _HEADER_END.search(body, pos, limit)
    stop = found.end() if found is not None else limit
    if body.find(b"Body", pos, stop) >= 0:
        body_start = _BODY_START.search(body, pos, stop)
        if body_start is not None:
            return body_start.end(), None
    return stop, found


def _trie_of(fields: Mapping[tuple[str, ...], str]) -> _Trie | None:
    """*fields* as a trie, or None if one path contains another (left to the streaming read)."""
    trie: _Trie = {}
    for tags, key in fields.items():
        level = trie
        for tag in tags[:-1]:
            next_level = level.setdefault(tag, {})
            if not isinstance(next_level, dict):
                return None
            level = next_level
        if tags[-1] in level:
            return None
        level[tags[-1]] = key
    return trie


def _collect(node: etree._Element, trie: _Trie, values: dict[str, str]) -> bool:
    """Add the texts of the fields below *node* to *values*; False if one is given twice or
    holds more than text."""
    for child in node:
        entry = trie.get(child.tag)
        if entry is None:
            continue
        if isinstance(entry, str):
            if entry in values or len(child):
                return False
            values[entry] = child.text or ""
        elif not _collect(child, entry, values):
            return False
    return True


@dataclass(frozen=True, slots=True)
class RoutingBlockReader:
    """Reads the texts of a routing block's fields from the start of a SOAP message.

    *fields* maps each field's tag path below the block (Clark notation) to its key; *names*
    maps each key to the name used in failure details.
    """

    block_tag: str
    block_name: str
    fields: Mapping[tuple[str, ...], str]
    names: Mapping[str, str]
    max_header_bytes: int
    max_depth: int
    chunk_size: int
    _trie: _Trie | None = field(init=False, repr=False, compare=False)
    _too_deep: etree.XPath = field(init=False, repr=False, compare=False)
    _shapes: KnownShapes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The tree read needs the Header and the block within max_depth (else every read
        # refuses), and fields of which none contains another.
        trie = _trie_of(self.fields) if self.max_depth >= 3 else None
        object.__setattr__(self, "_trie", trie)
        object.__setattr__(self, "_too_deep", _too_deep(self.max_depth))
        object.__setattr__(self, "_shapes", KnownShapes())

    def read(self, body: bytes) -> Found:
        """The SOAP version and the text of each field found, or RpnFailure."""
        limit = min(len(body), self.max_header_bytes)
        stop, header_end = _segment_end(body, 0, limit)
        if header_end is None or self._trie is None:
            _check_start(body)
            _screen(body, 0, stop)
            return self._read_streaming(body, limit)
        header = body[:stop]
        pieces = cut(header)
        tags = markup(pieces)
        shape = self._shapes.find(tags)
        if shape is not None:
            values = shape.read(pieces)
            if values is not None:
                # The header it was learnt from passed _check_start and _screen: so does this.
                return shape.version, values
        _check_start(body)
        _screen(body, 0, stop)
        # The Envelope's end tag, on the guess that it has the Header's prefix.
        closer = b"</" + header_end.group(1) + b"Envelope>"
        found = self._read_tree(header + closer)
        if found is None:
            return self._read_streaming(body, limit)
        if shape is None:
            self._shapes.learn(
                tags, header, pieces, found, lambda probe: self._read_tree(probe + closer)
            )
        return found

    def _read_tree(self, document: bytes) -> Found | None:
        """The result of a first segment (screened, then closed) of the usual layout, or None.

        None unless the streaming read of the same bytes would surely return this result:
        the segment ends the Envelope's first child element, its Header, which holds one
        routing block whose fields are each given once, as text; no element is nested too deep.
        """
        trie = self._trie
        assert trie is not None
        parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
        # The parser is taken while in use, and put back only after a clean close().
        _PARSERS.parser = None
        if parser is None:
            parser = _new_parser()
        try:
            # The root closed right after the segment: the Header must have ended in it.
            parser.feed(document)
            root = parser.close()
        except etree.LxmlError:
            return _UNSETTLED
        _PARSERS.parser = parser
        kind = _ENVELOPES.get(root.tag)
        if kind is None or not len(root):
            return _UNSETTLED
        # The segment ends with the Header's end tag, so the Header is the Envelope's last child;
        # comments and processing instructions may come before it, but no element.
        header = root[-1]
        if header.tag != kind.header_tag or (
            len(root) > 1 and next(root.iterchildren(etree.Element)) is not header
        ):
            return _UNSETTLED
        docinfo = root.getroottree().docinfo
        if getattr(docinfo, "doctype", ""):
            return _UNSETTLED
        # An element at depth D takes 2 * D - 1 '<' at least: D start tags, the end tags of
        # the D - 2 elements between it and the Envelope (they end in the Header), the closer.
        if document.count(b"<") > 2 * self.max_depth and self._too_deep(header):
            return _UNSETTLED
        block = None
        block_tag = self.block_tag
        for child in header:
            if child.tag == block_tag:
                if block is not None:
                    return _UNSETTLED
                block = child
        values: dict[str, str] = {}
        if block is None or not _collect(block, trie, values):
            return _UNSETTLED
        return kind.version, values

    def _read_streaming(self, body: bytes, limit: int) -> Found:
        """Feed the message in segments and chunks, following each event (see ``_Walk``)."""
        parser = etree.XMLPullParser(
            events=_EVENTS,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        walk = _Walk(self)
        pos = 0
        while pos < limit:
            stop = _segment_end(body, pos, limit)[0]
            _screen(body, pos, stop)
            while pos < stop:
                end = min(pos + self.chunk_size, stop)
                try:
                    parser.feed(body[pos:end])
                except etree.LxmlError as exc:
                    # Events parsed before the error may already settle the matter.
                    if walk.consume(cast(_Events, parser.read_events())):
                        return walk.result()
                    raise _syntax_failure(exc) from None
                pos = end
                if walk.consume(cast(_Events, parser.read_events())):
                    return walk.result()
        if len(body) > limit:
            raise _unreadable(
                f"the SOAP Header must end within the first {self.max_header_bytes} bytes",
                f"l'en-tête SOAP doit se terminer dans les {self.max_header_bytes} premiers octets",
            )
        raise _forbidden(
            "not well-formed XML: the message ends before its SOAP Header does",
            "XML mal formé : le message se termine avant la fin de son en-tête SOAP",
        )


class _Walk:
    """The state of one read: where the parse is, and the field texts found so far."""

    __slots__ = (
        "block",
        "block_seen",
        "depth",
        "envelope",
        "header",
        "kind",
        "path",
        "reader",
        "values",
    )

    def __init__(self, reader: RoutingBlockReader) -> None:
        self.reader = reader
        self.depth = 0
        self.kind: _Envelope | None = None
        self.envelope: etree._Element | None = None
        self.header: etree._Element | None = None
        self.block: etree._Element | None = None
        self.block_seen = False
        self.path: list[str] = []
        self.values: dict[str, str] = {}

    def result(self) -> Found:
        assert self.kind is not None
        if not self.block_seen:
            raise _unreadable(
                f"{self.reader.block_name}: no routing block in the SOAP Header",
                f"{self.reader.block_name} : aucun bloc de routage dans l'en-tête SOAP",
            )
        return self.kind.version, self.values

    def consume(self, events: _Events) -> bool:
        """Follow *events*; True once the SOAP Header has ended."""
        # On every request's path: state lives in locals while the loop runs.
        reader = self.reader
        max_depth = reader.max_depth
        fields = reader.fields
        path = self.path
        depth = self.depth
        block = self.block
        try:
            for event, node in events:
                if event == "start":
                    depth += 1
                    if depth > max_depth:
                        raise _unreadable(
                            f"elements are nested deeper than {max_depth} levels",
                            f"éléments imbriqués sur plus de {max_depth} niveaux",
                        )
                    if block is not None:
                        path.append(node.tag)
                    elif depth == 3:
                        if node.tag == reader.block_tag:
                            block = self._block_start(node)
                    elif depth == 2:
                        self._envelope_child(node)
                    elif depth == 1:
                        self._root(node)
                    continue
                # An "end" event.
                if block is not None:
                    if depth > 3:
                        key = fields.get(tuple(path))
                        if key is not None:
                            self._field(key, node)
                        path.pop()
                    elif node is block:
                        block = None
                    else:
                        raise _broken()
                elif depth == 2:
                    if node is not self.header:
                        raise _broken()
                    return True
                elif depth == 1:
                    raise _unreadable(
                        "no routing block: the SOAP Envelope has no Header",
                        "aucun bloc de routage : l'enveloppe SOAP n'a pas d'en-tête (Header)",
                    )
                depth -= 1
        finally:
            self.depth = depth
            self.block = block
        return False

    def _root(self, node: etree._Element) -> None:
        kind = _ENVELOPES.get(node.tag)
        if kind is None:
            raise _unreadable(
                "the root element must be a SOAP 1.1 or SOAP 1.2 Envelope",
                "l'élément racine doit être une enveloppe SOAP 1.1 ou SOAP 1.2",
            )
        docinfo = node.getroottree().docinfo
        if getattr(docinfo, "doctype", ""):
            raise _forbidden(*_DTD_REFUSED)
        self.kind = kind
        self.envelope = node

    def _envelope_child(self, node: etree._Element) -> None:
        assert self.kind is not None
        if node.tag == self.kind.header_tag:
            if node.getparent() is not self.envelope:
                raise _broken()
            self.header = node
        elif node.tag == self.kind.body_tag:
            raise _unreadable(
                "no routing block: the SOAP Body comes before any SOAP Header",
                "aucun bloc de routage : le corps SOAP (Body) précède tout en-tête (Header)",
            )
        else:
            raise _unreadable(
                "the first child of the SOAP Envelope must be its Header",
                "le premier enfant de l'enveloppe SOAP doit être son en-tête (Header)",
            )

    def _block_start(self, node: etree._Element) -> etree._Element:
        if self.block_seen:
            raise _unreadable(
                f"{self.reader.block_name}: given more than once",
                f"{self.reader.block_name} : présent plus d'une fois",
            )
        if node.getparent() is not self.header:
            raise _broken()
        self.block_seen = True
        return node

    def _field(self, key: str, node: etree._Element) -> None:
        name = self.reader.names[key]
        if key in self.values:
            raise _unreadable(f"{name}: given more than once", f"{name} : présent plus d'une fois")
        if len(node):
            raise _unreadable(
                f"{name}: must hold text only", f"{name} : doit contenir du texte seulement"
            )
        self.values[key] = node.text or ""
