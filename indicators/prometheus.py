"""A small client of the Prometheus HTTP query API (``/api/v1/query``, instant vectors)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IAgent
from zope.interface import Interface, implementer

from indicators.webclient import timed_get


class PrometheusError(Exception):
    """Prometheus could not be reached or did not answer a usable vector."""


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


class IPrometheus(Interface):
    def query(expr: str, at: float) -> Deferred[list[Sample]]:
        """The instant vector *expr* evaluates to at Unix time *at*."""


def parse_vector(body: bytes) -> list[Sample]:
    """The samples of an API answer, or PrometheusError naming what is wrong with it."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PrometheusError("answer is not JSON") from None
    if not isinstance(document, dict):
        raise PrometheusError("answer is not a JSON object")
    if document.get("status") != "success":
        raise PrometheusError(
            f"query failed: {document.get('errorType', '?')}: {document.get('error', '?')}"
        )
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") not in ("vector", "scalar"):
        raise PrometheusError("answer is not an instant vector")
    result = data.get("result")
    if data["resultType"] == "scalar":
        result = [{"metric": {}, "value": result}]
    if not isinstance(result, list):
        raise PrometheusError("answer has no result list")
    samples = []
    for item in result:
        try:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise PrometheusError("answer holds a malformed sample") from None
        samples.append(Sample(labels, value))
    return samples


@implementer(IPrometheus)
class PrometheusHttpApi:
    """Instant queries over HTTP(S) with a per-query timeout."""

    def __init__(self, agent: IAgent, base_url: str, timeout: float, clock: IReactorTime) -> None:
        self._agent = agent
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._clock = clock

    def query(self, expr: str, at: float) -> Deferred[list[Sample]]:
        params = urlencode(
            {
                "query": expr,
                "time": f"{at:.3f}",
                "timeout": f"{max(1, round(self._timeout * 1000))}ms",
            }
        )
        url = f"{self._base}/api/v1/query?{params}"
        answer = timed_get(self._agent, url, self._timeout, self._clock)
        return answer.addCallbacks(_vector, _failed)


def _vector(answer: tuple[int, bytes]) -> list[Sample]:
    status, body = answer
    if status == 200 or status in (400, 422, 503):
        return parse_vector(body)
    raise PrometheusError(f"Prometheus answered HTTP {status}")


def _failed(failure: Failure) -> Failure:
    if failure.check(TimeoutError):
        raise PrometheusError("Prometheus did not answer in time")
    if failure.check(CancelledError):
        return failure
    raise PrometheusError(f"cannot query Prometheus: {failure.value.__class__.__name__}")


def finite(value: float) -> float | None:
    """*value*, or None when Prometheus said NaN or infinite (e.g. a quantile of nothing)."""
    return value if math.isfinite(value) else None
