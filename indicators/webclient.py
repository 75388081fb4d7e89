"""The one HTTP GET the indicators make, to Prometheus and to Mutuelle ANS's admin API."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent

_JSON = Headers({b"Accept": [b"application/json"]})


def timed_get(
    agent: IAgent, url: str, timeout: float, clock: IReactorTime
) -> Deferred[tuple[int, bytes]]:
    """GET *url* asking for JSON: its (status, body). Fails with ``TimeoutError`` after
    *timeout* seconds (the request is cancelled), or with what the agent raised."""

    async def get() -> tuple[int, bytes]:
        response = await agent.request(b"GET", url.encode(), _JSON)
        body: bytes = await readBody(response)
        return response.code, body

    answer = Deferred.fromCoroutine(get())
    answer.addTimeout(timeout, clock)
    return answer
