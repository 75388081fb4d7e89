"""A small client of Mutuelle ANS's admin API: each sandbox's qualification progress."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse
from zope.interface import implementer

from indicators.progress import (
    IProgressSource,
    Progress,
    ProgressError,
    error_message,
    parse_progress,
)


@implementer(IProgressSource)
class MutuelleAdminApi:
    """``GET <base>/sandboxes/<FINESS>/qualification?sectors=..`` with a per-request timeout."""

    def __init__(self, agent: IAgent, base_url: str, timeout: float, clock: IReactorTime) -> None:
        self._agent = agent
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._clock = clock

    def progress(self, finess: str, sectors: tuple[str, ...]) -> Deferred[Progress]:
        answer = Deferred.fromCoroutine(self._progress(finess, sectors))
        answer.addTimeout(self._timeout, self._clock)
        return answer.addErrback(_timed_out)

    async def _progress(self, finess: str, sectors: tuple[str, ...]) -> Progress:
        query = urlencode({"sectors": ",".join(sectors)}, safe=",")
        url = f"{self._base}/sandboxes/{quote(finess, safe='')}/qualification?{query}"
        request: Deferred[IResponse] = self._agent.request(
            b"GET", url.encode(), Headers({b"Accept": [b"application/json"]})
        )
        try:
            response = await request
            body: bytes = await readBody(response)
        except CancelledError:
            raise
        except Exception as exc:
            raise ProgressError(f"Mutuelle ANS injoignable ({exc.__class__.__name__})") from exc
        if response.code == 200:
            return parse_progress(body)
        detail = error_message(body)
        raise ProgressError(
            f"Mutuelle ANS a répondu HTTP {response.code}" + (f" : {detail}" if detail else "")
        )


def _timed_out(failure: Failure) -> Progress:
    failure.trap(TimeoutError)
    raise ProgressError("Mutuelle ANS n'a pas répondu à temps")
