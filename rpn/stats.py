"""One record per exchange (never personal data) feeding metrics and the access log."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry, Counter, Histogram
from twisted.logger import Logger
from zope.interface import Interface, implementer

#: Outcomes of an exchange: a closed set, so metric labels stay bounded.
OUTCOMES = (
    "answered",  # the AMC answered (whatever its business verdict)
    "rejected",  # the relay refused the request (4xx fault)
    "amc_error",  # the AMC's answer was cut, garbled, or its TLS failed
    "amc_unavailable",  # connection refused or failed before anything was sent
    "breaker_open",  # the AMC's breaker is open: not sent
    "overloaded",  # the AMC's queue was full: not sent
    "timeout",  # the AMC did not answer before the deadline
    "annuaire_unavailable",
    "client_gone",  # the establishment disconnected before the answer
    "relay_error",  # the relay itself failed (a bug: see its log)
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class ExchangeRecord:
    """What the relay remembers of one exchange: identifiers and codes only."""

    exchange_id: str = ""
    finess: str = ""
    amc: str = ""
    service: str = ""
    version: str = ""
    outcome: str = "rejected"
    code: str = ""  # the relay's error code, empty when the AMC answered
    status: int = 0  # HTTP status returned to the establishment
    upstream_seconds: float | None = None
    total_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


class IStatsSink(Interface):
    def record(exchange: ExchangeRecord) -> None:
        """Account for one finished exchange."""


@implementer(IStatsSink)
class PrometheusStats:
    """Counters and histograms of exchanges, registered in the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.exchanges = Counter(
            "rpn_exchanges_total",
            "Exchanges handled by the relay, by ROC service, AMC number and outcome.",
            ("service", "amc", "outcome"),
            registry=registry,
        )
        self.errors = Counter(
            "rpn_relay_errors_total",
            "Faults produced by the relay itself, by project error code.",
            ("code",),
            registry=registry,
        )
        self.duration = Histogram(
            "rpn_exchange_duration_seconds",
            "Time from the request's arrival to the end of the answer, by ROC service.",
            ("service",),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "rpn_upstream_duration_seconds",
            "Time the AMC took to answer a forwarded exchange, by AMC number.",
            ("amc",),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.bytes = Counter(
            "rpn_exchange_bytes_total",
            "Bytes of SOAP bodies relayed, by direction (request, response).",
            ("direction",),
            registry=registry,
        )

    def record(self, exchange: ExchangeRecord) -> None:
        service = exchange.service or "unknown"
        self.exchanges.labels(service, exchange.amc or "none", exchange.outcome).inc()
        if exchange.code:
            self.errors.labels(exchange.code).inc()
        self.duration.labels(service).observe(exchange.total_seconds)
        if exchange.upstream_seconds is not None:
            self.upstream_duration.labels(exchange.amc).observe(exchange.upstream_seconds)
        self.bytes.labels("request").inc(exchange.bytes_in)
        self.bytes.labels("response").inc(exchange.bytes_out)


@implementer(IStatsSink)
class AccessLog:
    """One JSON line per exchange, to a file or as an event in the service log."""

    log = Logger()

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    @classmethod
    def to_file(cls, path: Path) -> AccessLog:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path.open("a", encoding="utf-8", buffering=1))

    def record(self, exchange: ExchangeRecord) -> None:
        fields = asdict(exchange)
        if self._stream is None:
            self.log.info(
                "exchange {exchange_id} finess={finess} amc={amc} service={service} "
                "outcome={outcome} code={code} status={status} elapsed={total_seconds:.4f}",
                **fields,
            )
        else:
            self._stream.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


@implementer(IStatsSink)
class StatsFanout:
    """Sends each record to every sink; one failing sink never loses the others."""

    log = Logger()

    def __init__(self, *sinks: IStatsSink) -> None:
        self._sinks = sinks

    def record(self, exchange: ExchangeRecord) -> None:
        for sink in self._sinks:
            try:
                sink.record(exchange)
            except Exception:  # noqa: BLE001 - a broken sink must not lose the others
                self.log.failure(
                    "stats sink failed for exchange {exchange_id}", exchange_id=exchange.exchange_id
                )
