"""In-memory fakes for the indicators' seams; each passes ``verifyObject`` for its interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from indicators.prometheus import IPrometheus, PrometheusError, Sample


@implementer(IPrometheus)
class FakePrometheus:
    """Answers each query with the samples of the first *answers* key found in the expression.

    Keys are substrings of PromQL (a metric name, ``by (finess, code)``...), tried in order;
    an expression no key matches answers an empty vector. ``error`` makes every query fail.
    """

    def __init__(
        self,
        answers: Mapping[str, list[Sample]] | None = None,
        answer: Callable[[str, float], list[Sample]] | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self._answer = answer
        self.queries: list[tuple[str, float]] = []
        self.error: str | None = None

    def query(self, expr: str, at: float) -> Deferred[list[Sample]]:
        self.queries.append((expr, at))
        if self.error is not None:
            return fail(PrometheusError(self.error))
        if self._answer is not None:
            return succeed(self._answer(expr, at))
        for key, samples in self.answers.items():
            if key in expr:
                return succeed(list(samples))
        return succeed([])


def sample(value: float, **labels: str) -> Sample:
    return Sample(dict(labels), value)
