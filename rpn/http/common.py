"""What the relay's HTTP server and client share: character tables and the client's failures.

The client's failures are the project's own types (not twisted.web's private ones), so that
the upstream can tell, from the type alone, whether a request may have reached its server.
"""

from __future__ import annotations

from twisted.python.failure import Failure

#: RFC 9110 ``tchar``: what method and header-field names are made of. ``name.translate(None,
#: TOKEN_CHARS)`` is empty exactly when *name* is all token characters.
TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HEX_DIGITS = b"0123456789abcdefABCDEF"
DIGITS = b"0123456789"


class BodyTooLarge(Exception):
    """An answer body went past the configured limit (its connection is dropped)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


class BadUrl(ValueError):
    """A URL the client cannot send to (not http or https, no host, bad port...)."""


class RequestNotSent(Exception):
    """The request provably never left: every connection tried was closed before a byte."""


class ConnectionFailed(Exception):
    """The connection failed while a request was on it; *reason* says how."""

    def __init__(self, reason: Failure) -> None:
        super().__init__(reason.getErrorMessage())
        self.reason = reason


class NoAnswer(ConnectionFailed):
    """The connection was lost before any byte of the answer (the request may have arrived)."""


class AnswerCut(ConnectionFailed):
    """The answer was cut before its end, or is not an HTTP/1.x answer."""
