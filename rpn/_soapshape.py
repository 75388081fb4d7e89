"""Known header shapes: reading a SOAP header by its markup (private to ``rpn._soapheader``).

A client's headers differ from request to request in their texts (exchange id, AMC number...)
and keep their markup. Two headers whose bytes differ only in the texts between tags, those
texts being plain (``_PLAIN_TEXT``: what the parser gives back unchanged), parse to the same
tree with other texts, provided every text is character data. That is so when '<' and '>'
alternate and there is no comment, CDATA section, DOCTYPE or processing instruction but a
leading XML declaration, except for the text after that declaration, which is in the prolog
and is kept as it was; a probe confirms it (see ``_shape_of``). Such a header also passes the
checks and screens that the header sharing its markup passed, since they look only at its
first bytes, its XML declaration and its tags (for '&' and '<!'), and its first Header end tag
is at the same place among its tags.

So once a header has been read as a tree, a later header with the same markup is read by taking
each field's text from its place: no parse, and the answer the parse would have given.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from roc.model import SoapVersion

#: The SOAP version and each field's text, as the reads of a header give them.
Found = tuple[SoapVersion, dict[str, str]]
#: What texts between tags may hold for a shape to read them: printable ASCII, tab and LF; no
#: '&' (a reference is not its own text), no CR (line ends are normalised).
_PLAIN_TEXT = re.compile(rb"[\t\n\x20-\x25\x27-\x7e]*")
#: Every byte but '<' and '>': deleted, what is left says where tags open and close.
_NOT_ANGLES = bytes(sorted(set(range(256)) - set(b"<>")))
#: What a probe writes in the n-th text (see ``_shape_of``).
_MARKER = re.compile(r"#([0-9]+)#")
#: Shapes kept (the oldest goes first), the largest header learnt, and how many first
#: sightings are remembered.
MAX_SHAPES = 256
MAX_SHAPE_BYTES = 16384
MAX_SIGHTINGS = 4096
#: Once MAX_SHAPES are kept, one chance to learn in so many is taken: with more markups in use
#: than are kept, a probe per read would cost more than it saves.
FULL_LEARNING_PERIOD = 16


def cut(header: bytes) -> list[bytes]:
    """*header* cut before every '<' and after every '>': texts, then tags with their '>'.

    Where '<' and '>' alternate, the odd pieces are the tags (without their '<') and the even
    ones the texts around them; a '>' anywhere else ends an even piece.
    """
    return header.replace(b">", b"><").split(b"<")


def markup(pieces: list[bytes]) -> bytes:
    """The tags of a header cut into *pieces*, as one key (no piece holds a '<')."""
    return b"<".join(pieces[1::2])


def _joined(pieces: list[bytes]) -> bytes:
    """The header that *pieces* were cut from."""
    return b"".join(b"<" + piece if index % 2 else piece for index, piece in enumerate(pieces))


@dataclass(frozen=True, slots=True)
class Shape:
    """The markup of a header read once, and where each field's text is in it.

    A header with the same tags (see ``markup``) has this shape if its pieces before the first
    hole are the same and its texts are plain; each field's text is then in its hole, or never
    changes (an empty field element).
    """

    version: SoapVersion
    #: The pieces before the first hole, and its index among the pieces.
    head: list[bytes]
    first_hole: int
    #: The fields read from a hole (its number among the holes), then those always equal.
    keys: tuple[str, ...]
    holes: tuple[int, ...]
    constants: tuple[tuple[str, str], ...]

    def read(self, pieces: list[bytes]) -> dict[str, str] | None:
        """The field texts of a header with this shape's tags, or None if it has another."""
        if pieces[: self.first_hole] != self.head:
            return None
        texts = pieces[self.first_hole :: 2]
        if _PLAIN_TEXT.fullmatch(b"".join(texts)) is None:
            return None
        values = dict(
            zip(self.keys, map(bytes.decode, map(texts.__getitem__, self.holes)), strict=True)
        )
        values.update(self.constants)
        return values


def _shape_of(
    header: bytes, pieces: list[bytes], found: Found, read: Callable[[bytes], Found | None]
) -> Shape | None:
    """The shape of *header*, which *read* (a tree read) read as *found*; None if in doubt.

    Where each field's text is comes from a probe: the header with its n-th text replaced by
    ``#n#``, read by *read*, must give the same fields, each a marker or unchanged (a text
    that is not character data would fail the probe).
    """
    version, values = found
    # Only the first tag may be a processing instruction (the XML declaration).
    if b"<!" in header or header.find(b"<?", header.find(b"<") + 1) >= 0:
        return None
    tags = pieces[1::2]
    first_hole = 4 if tags[0].startswith(b"?") else 2
    texts = pieces[first_hole::2]
    if (
        len(pieces) <= first_hole
        or _PLAIN_TEXT.fullmatch(b"".join(texts)) is None
        or header.translate(None, _NOT_ANGLES) != b"<>" * len(tags)
    ):
        return None
    probe = list(pieces)
    probe[first_hole::2] = [b"#%d#" % hole for hole in range(len(texts))]
    probed = read(_joined(probe))
    if probed is None or probed[0] != version or probed[1].keys() != values.keys():
        return None
    keys: list[str] = []
    holes: list[int] = []
    constants: list[tuple[str, str]] = []
    for key, text in probed[1].items():
        marker = _MARKER.fullmatch(text)
        if marker is not None:
            hole = int(marker.group(1))
            if texts[hole].decode("ascii") != values[key]:
                return None
            keys.append(key)
            holes.append(hole)
        elif "#" in text or text != values[key]:
            return None
        else:
            constants.append((key, text))
    return Shape(
        version, pieces[:first_hole], first_hole, tuple(keys), tuple(holes), tuple(constants)
    )


class KnownShapes:
    """The shapes of headers read as trees, by markup; safe to share between threads.

    A markup is learnt the second time it is read, so that headers whose markup changes every
    time (a nonce in an attribute) cost no probe; and only so many are kept.
    """

    def __init__(self) -> None:
        self._shapes: dict[bytes, Shape] = {}
        self._sightings: set[int] = set()
        self._chances = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._shapes)

    def find(self, tags: bytes) -> Shape | None:
        """The shape learnt for headers with these tags (see ``markup``), if any."""
        return self._shapes.get(tags)

    def learn(
        self,
        tags: bytes,
        header: bytes,
        pieces: list[bytes],
        found: Found,
        read: Callable[[bytes], Found | None],
    ) -> None:
        """Note *header*, with *tags* and cut into *pieces*, which *read* read as *found*; learn
        its shape if its markup was seen before."""
        if len(header) > MAX_SHAPE_BYTES:
            return
        sighting = hash(tags)
        with self._lock:
            if sighting not in self._sightings:
                if len(self._sightings) >= MAX_SIGHTINGS:
                    self._sightings.clear()
                self._sightings.add(sighting)
                return
            if len(self._shapes) >= MAX_SHAPES:
                self._chances = (self._chances + 1) % FULL_LEARNING_PERIOD
                if self._chances:
                    return
        shape = _shape_of(header, pieces, found, read)
        if shape is None:
            return
        with self._lock:
            while len(self._shapes) >= MAX_SHAPES:
                del self._shapes[next(iter(self._shapes))]
            self._shapes[tags] = shape
