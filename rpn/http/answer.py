"""Reading an HTTP/1.1 answer from an AMC, sans I/O: bytes in, status, headers and body out.

``AnswerParser`` is fed bytes as they arrive and says when the answer is whole; anything it
cannot trust (status line, header syntax, lengths, chunk framing, sizes) raises
``NotAnHttpAnswer`` or ``BodyTooLarge``. ``rpn.http.client`` drives it over a connection.
"""

from __future__ import annotations

from rpn.http.common import HEX_DIGITS, TOKEN_CHARS, BodyTooLarge

__all__ = ["HOP_BY_HOP", "MAX_ANSWER_HEAD_BYTES", "AnswerParser", "NotAnHttpAnswer"]

#: Headers of an answer that are about its connection, not its content (RFC 9110 section 7.6.1),
#: plus Content-Length, which whoever relays the body sets again.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)

#: The most bytes of status lines and headers (interim answers included), and of trailers.
MAX_ANSWER_HEAD_BYTES = 64 * 1024
_MAX_CHUNK_SIZE_LINE = 1024
_MAX_TRAILER_LINE = 8 * 1024
_NO_BODY = (204, 304)

# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _DONE = range(8)


class NotAnHttpAnswer(Exception):
    """The bytes from the AMC are not an HTTP/1.x answer we can trust."""


class AnswerParser:
    """One answer to a POST, parsed from bytes as they arrive; raises on anything malformed.

    ``feed`` returns True once the answer is complete (bytes after it are kept in ``leftover``);
    ``end`` says whether the connection closing completes it (a body delimited by the close).
    Fails with ``NotAnHttpAnswer``, or ``BodyTooLarge`` past *max_body* bytes of body.
    """

    __slots__ = (
        "_buffer",
        "_chunks",
        "_head",
        "_head_bytes",
        "_keep_alive",
        "_max_body",
        "_remaining",
        "_size",
        "_state",
        "body",
        "headers",
        "keep_alive_timeout",
        "leftover",
        "received_any",
        "reusable",
        "status",
    )

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._state = _HEAD
        self._head: bytearray | None = None
        self._buffer = b""
        self._chunks: list[bytes] = []
        self._size = 0
        self._remaining = 0
        self._head_bytes = 0
        self._keep_alive = False
        #: Whether any byte arrived (a connection lost after some did is a cut answer).
        self.received_any = False
        self.status = 0
        #: End-to-end headers as received (name case kept), hop-by-hop ones left out.
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.leftover = b""
        #: Whether the connection may carry another request once this answer is complete.
        self.reusable = False
        #: Seconds the AMC keeps the connection idle, when it says (``Keep-Alive: timeout=N``).
        self.keep_alive_timeout: float | None = None

    def feed(self, data: bytes) -> bool:
        self.received_any = True
        if self._state == _HEAD:
            pending = self._head
            if pending is not None:
                # Look for the end of the head only in what is new, so a head arriving a byte
                # at a time costs linear time, not quadratic.
                scan_from = max(0, len(pending) - 2)
                pending += data
                if pending.find(b"\n\n", scan_from) < 0 and pending.find(b"\n\r\n", scan_from) < 0:
                    if self._head_bytes + len(pending) > MAX_ANSWER_HEAD_BYTES:
                        raise NotAnHttpAnswer("answer head too large")
                    return False
                data = bytes(pending)
                self._head = None
            data = self._read_heads(data)
            if self._state == _HEAD:
                return False
            if self._state == _DONE:
                self.leftover = data
                return True
            if not data:
                return False
        elif self._buffer:
            data = self._buffer + data
            self._buffer = b""
        state = self._state
        if state == _LENGTH:
            remaining = self._remaining
            if len(data) < remaining:
                self._chunks.append(data)
                self._remaining = remaining - len(data)
                return False
            if len(data) == remaining:
                self._chunks.append(data)
            else:
                self._chunks.append(data[:remaining])
                self.leftover = data[remaining:]
            self._finish()
            return True
        if state == _UNTIL_CLOSE:
            self._add_body(data)
            return False
        if state == _DONE:
            raise NotAnHttpAnswer("bytes after the end of the answer")
        return self._read_chunked(data)

    def end(self) -> bool:
        """The connection closed: True when that completes the answer."""
        if self._state == _UNTIL_CLOSE:
            self._finish()
            return True
        return False

    def _finish(self) -> None:
        self._state = _DONE
        chunks = self._chunks
        self.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []

    def _add_body(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._max_body:
            raise BodyTooLarge(self._max_body)
        self._chunks.append(data)

    # -- head --------------------------------------------------------------------------------

    def _read_heads(self, data: bytes) -> bytes:
        """Parse heads (interim 1xx ones skipped) from *data*; the bytes after the final one."""
        while True:
            crlf = data.find(b"\n\r\n")
            lf = data.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(data))
            if lf >= 0:
                end, body_at = lf, lf + 2
            elif crlf >= 0:
                end, body_at = crlf, crlf + 3
            else:
                if self._head_bytes + len(data) > MAX_ANSWER_HEAD_BYTES:
                    raise NotAnHttpAnswer("answer head too large")
                self._head = bytearray(data)
                return b""
            self._head_bytes += body_at
            if self._head_bytes > MAX_ANSWER_HEAD_BYTES:
                raise NotAnHttpAnswer("answer head too large")
            self._parse_head(data[:end])
            data = data[body_at:]
            if self.status >= 200:
                return data
            # An interim answer (100 Continue, 102, 103): the final one follows.

    def _parse_head(self, head: bytes) -> None:
        if head.endswith(b"\r"):
            head = head[:-1]
        crlf = head.count(b"\r\n")
        if crlf == head.count(b"\n") == head.count(b"\r") and b"\n " not in head:
            lines = head.split(b"\r\n")
            if b"\n\t" in head:
                lines = _unfold(lines)
        else:
            lines = _unfold([line.removesuffix(b"\r") for line in head.split(b"\n")])
        version, _, rest = lines[0].partition(b" ")
        code, _, _ = rest.partition(b" ")
        if not (len(code) == 3 and code.isdigit() and code[0] != 0x30):
            raise NotAnHttpAnswer("bad status line")
        if version == b"HTTP/1.1":
            keep_alive = True
        elif version == b"HTTP/1.0":
            keep_alive = False
        elif version.startswith(b"HTTP/1.") and version[7:].isdigit():
            keep_alive = True  # a later 1.x minor version is read as 1.1 (RFC 9110 2.5)
        else:
            raise NotAnHttpAnswer("not an HTTP/1.x answer")
        status = int(code)
        if status == 101:
            raise NotAnHttpAnswer("unrequested protocol switch")
        headers: list[tuple[bytes, bytes]] = []
        lengths: list[bytes] = []
        codings: list[bytes] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not (colon and name):
                raise NotAnHttpAnswer("header line without a name")
            if name.translate(None, TOKEN_CHARS):
                raise NotAnHttpAnswer("bad header name")
            value = value.strip(b" \t")
            if b"\r" in value:
                value = value.replace(b"\r", b" ")
            lower = name.lower()
            if lower not in HOP_BY_HOP:
                headers.append((name, value))
            elif lower == b"content-length":
                lengths.append(value)
            elif lower == b"transfer-encoding":
                codings.append(value)
            elif lower == b"connection":
                if value == b"keep-alive":  # what nginx sends
                    keep_alive = True
                    continue
                tokens = {t.strip(b" \t").lower() for t in value.split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
            elif lower == b"keep-alive":
                self.keep_alive_timeout = keep_alive_timeout(value)
        self.status = status
        self.headers = headers
        if status < 200:
            return
        self._keep_alive = keep_alive
        self._body_mode(lengths, codings)

    def _body_mode(self, lengths: list[bytes], codings: list[bytes]) -> None:
        if self.status in _NO_BODY:
            self._state = _DONE
            self.reusable = self._keep_alive
            return
        if codings:
            coding = b",".join(codings).strip(b" \t").lower()
            if coding != b"chunked":
                raise NotAnHttpAnswer("unsupported transfer coding")
            self._state = _CHUNK_SIZE
            # Both framings at once may be a smuggling attempt: read it, never reuse it.
            self.reusable = self._keep_alive and not lengths
            return
        if not lengths:
            self._state = _UNTIL_CLOSE
            return
        if len(lengths) == 1 and lengths[0].isdigit() and len(lengths[0]) <= 18:
            values = {int(lengths[0])}  # the usual case, as the loop below would read it
        else:
            values = self._lengths(lengths)
        if len(values) != 1:
            raise NotAnHttpAnswer("conflicting Content-Length")
        (length,) = values
        if length > self._max_body:
            raise BodyTooLarge(self._max_body)
        self.reusable = self._keep_alive
        if length == 0:
            self._state = _DONE
        else:
            self._state = _LENGTH
            self._remaining = length

    def _lengths(self, lengths: list[bytes]) -> set[int]:
        values = set()
        for text in b",".join(lengths).split(b","):
            text = text.strip(b" \t")
            if not text.isdigit():
                raise NotAnHttpAnswer("bad Content-Length")
            if len(text) > 18:
                raise BodyTooLarge(self._max_body)  # and too long for int() to be cheap
            values.add(int(text))
        return values

    # -- chunked body ------------------------------------------------------------------------

    def _read_chunked(self, data: bytes) -> bool:
        at = 0
        end = len(data)
        state = self._state
        while at < end:
            if state == _CHUNK_DATA:
                take = min(self._remaining, end - at)
                self._chunks.append(data[at : at + take])
                at += take
                self._remaining -= take
                if self._remaining:
                    break
                state = _CHUNK_END
            elif state == _CHUNK_END:
                if end - at < 2:
                    break
                if data[at : at + 2] != b"\r\n":
                    raise NotAnHttpAnswer("chunk not followed by CRLF")
                at += 2
                state = _CHUNK_SIZE
            else:
                eol = data.find(b"\r\n", at)
                if eol < 0:
                    pending = end - at
                    if state == _CHUNK_SIZE and pending > _MAX_CHUNK_SIZE_LINE:
                        raise NotAnHttpAnswer("chunk size line too long")
                    if state == _TRAILER and (
                        pending > _MAX_TRAILER_LINE
                        or self._head_bytes + pending > MAX_ANSWER_HEAD_BYTES
                    ):
                        raise NotAnHttpAnswer("trailers too large")
                    break
                line = data[at:eol]
                at = eol + 2
                if state == _TRAILER:
                    self._head_bytes += len(line) + 2
                    if self._head_bytes > MAX_ANSWER_HEAD_BYTES:
                        raise NotAnHttpAnswer("trailers too large")
                    if not line:
                        self._state = _DONE
                        self.leftover = data[at:]
                        self._finish()
                        return True
                    continue  # trailers are not relayed
                size_text = line.partition(b";")[0].rstrip(b" \t")
                if not size_text or len(size_text) > 16 or size_text.translate(None, HEX_DIGITS):
                    raise NotAnHttpAnswer("bad chunk size")
                size = int(size_text, 16)
                if size == 0:
                    state = _TRAILER
                    continue
                self._size += size
                if self._size > self._max_body:
                    raise BodyTooLarge(self._max_body)
                self._remaining = size
                state = _CHUNK_DATA
        self._state = state
        self._buffer = data[at:]
        return False


def keep_alive_timeout(value: bytes) -> float | None:
    """The ``timeout`` parameter of a ``Keep-Alive`` header value, in seconds, if valid.

    ``Keep-Alive: timeout=5, max=100`` (RFC 2068 section 19.7.1, as Apache and nginx send it).
    """
    for parameter in value.split(b","):
        name, _, number = parameter.partition(b"=")
        if name.strip(b" \t").lower() == b"timeout":
            number = number.strip(b" \t")
            if number.isdigit() and len(number) <= 6:
                return float(number)
            return None
    return None


def _unfold(lines: list[bytes]) -> list[bytes]:
    """Header lines with obsolete line folding joined to the line they continue."""
    unfolded = lines[:1]
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if len(unfolded) < 2:
                raise NotAnHttpAnswer("folded line without a header")
            unfolded[-1] += line
        else:
            unfolded.append(line)
    return unfolded
