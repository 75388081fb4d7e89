"""A small client of Mutuelle ANS's admin API: each sandbox's qualification progress."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent
from zope.interface import implementer

from indicators.progress import (
    IProgressSource,
    Progress,
    ProgressError,
    error_message,
    parse_progress,
)
from indicators.webclient import timed_get


@implementer(IProgressSource)
class MutuelleAdminApi:
    """``GET <base>/sandboxes/<FINESS>/qualification?sectors=..`` with a per-request timeout."""

    def __init__(self, agent: IAgent, base_url: str, timeout: float, clock: IReactorTime) -> None:
        self._agent = agent
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._clock = clock

    def progress(self, finess: str, sectors: tuple[str, ...]) -> Deferred[Progress]:
        query = urlencode({"sectors": ",".join(sectors)}, safe=",")
        url = f"{self._base}/sandboxes/{quote(finess, safe='')}/qualification?{query}"
        answer = timed_get(self._agent, url, self._timeout, self._clock)
        return answer.addCallbacks(_progress, _failed)


def _progress(answer: tuple[int, bytes]) -> Progress:
    status, body = answer
    if status == 200:
        return parse_progress(body)
    detail = error_message(body)
    raise ProgressError(
        f"Mutuelle ANS a répondu HTTP {status}" + (f" : {detail}" if detail else "")
    )


def _failed(failure: Failure) -> Failure:
    if failure.check(TimeoutError):
        raise ProgressError("Mutuelle ANS n'a pas répondu à temps")
    if failure.check(CancelledError):
        return failure
    raise ProgressError(f"Mutuelle ANS injoignable ({failure.value.__class__.__name__})")
