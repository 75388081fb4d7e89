"""One record per exchange (never personal data) feeding metrics and the access log."""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from rpn.interfaces import IStatsSink
from rpn.metric_tables import MetricTable

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class ExchangeRecord:
    """What the relay remembers of one exchange: identifiers and codes only."""

    exchange_id: str = ""
    finess: str = ""
    amc: str = ""
    service: str = ""
    version: str = ""
    outcome: str = "rejected"  # an ``rpn.outcomes.Outcome`` label
    code: str = ""  # the relay's error code, empty when the AMC answered
    business_code: str = ""  # the AMC's return code ("00", "02"...), empty if none
    amc_code: str = ""  # the AMC's fault code (MUT-400-..., SOAP-SERVER, HTTP-503...), if any
    amc_name: str = ""  # the AMC's name in the annuaire (not logged: the number is)
    registered: bool = False  # the establishment is on the allow-list (bounded labels)
    certificate_expiry: float | None = None  # notAfter of its client certificate (unix time)
    status: int = 0  # HTTP status returned to the establishment
    upstream_seconds: float | None = None
    total_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


_EXCHANGES_HELP = "Exchanges handled by the relay, by ROC service, AMC number and outcome."
_ERRORS_HELP = "Faults produced by the relay itself, by project error code."
_DURATION_HELP = "Time from the request's arrival to the end of the answer, by ROC service."
_UPSTREAM_HELP = "Time the AMC took to answer a forwarded exchange, by AMC number."
_BYTES_HELP = "Bytes of SOAP bodies relayed, by direction (request, response)."
_BUCKET_LABELS = (*(floatToGoString(b) for b in _LATENCY_BUCKETS), "+Inf")  # type: ignore[no-untyped-call]


class _Histogram:
    """One histogram series as plain numbers: a count per bucket (not cumulative) and a sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(_LATENCY_BUCKETS, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        total = 0
        cumulative = []
        for label, count in zip(_BUCKET_LABELS, self.counts, strict=True):
            total += count
            cumulative.append((label, float(total)))
        return cumulative


class _ExchangeCollector(Collector):
    """The relay-wide exchange families, read from ``PrometheusStats``'s numbers at scrape time.

    The same families, help texts, labels and samples as prometheus_client's ``Counter`` and
    ``Histogram`` would expose (no ``_created`` series: the relay disables them), without a
    lock and a labelled child per update on the exchange path.
    """

    def __init__(self, stats: PrometheusStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        exchanges = CounterMetricFamily(
            "rpn_exchanges_total", _EXCHANGES_HELP, labels=("service", "amc", "outcome")
        )
        for labels, count in list(stats.exchange_counts.items()):
            exchanges.add_metric(labels, count)
        yield exchanges
        errors = CounterMetricFamily("rpn_relay_errors_total", _ERRORS_HELP, labels=("code",))
        for code, count in list(stats.error_counts.items()):
            errors.add_metric((code,), count)
        yield errors
        for name, help_text, label, series in (
            ("rpn_exchange_duration_seconds", _DURATION_HELP, "service", stats.durations),
            ("rpn_upstream_duration_seconds", _UPSTREAM_HELP, "amc", stats.upstream_durations),
        ):
            family = HistogramMetricFamily(name, help_text, labels=(label,))
            for value, histogram in list(series.items()):
                family.add_metric((value,), histogram.buckets(), histogram.sum)
            yield family
        relayed = CounterMetricFamily(
            "rpn_exchange_bytes_total", _BYTES_HELP, labels=("direction",)
        )
        if stats.exchange_counts:
            relayed.add_metric(("request",), stats.bytes_in)
            relayed.add_metric(("response",), stats.bytes_out)
        yield relayed


@implementer(IStatsSink)
class PrometheusStats:
    """Counters and histograms of exchanges, exposed through the given registry.

    Each record updates plain numbers; ``_ExchangeCollector`` turns them into families when
    the registry is scraped.
    """

    def __init__(self, registry: CollectorRegistry, clock: IReactorTime) -> None:
        self._clock = clock
        # Per-establishment families: hundreds of thousands of series at national scale,
        # kept as dicts (see rpn.metric_tables) and appended to the registry's exposition.
        self.by_establishment = MetricTable(
            "rpn_establishment_exchanges_total",
            "Exchanges by registered establishment (FINESS of its certificate), ROC service, "
            "AMC (none when refused before routing) and outcome.",
            "counter",
            ("finess", "service", "amc", "outcome"),
        )
        self.codes = MetricTable(
            "rpn_establishment_codes_total",
            "Codes received by each registered establishment, by ROC service and AMC: business "
            "return codes, relay fault codes (RPN-...) and AMC fault codes (the code of the "
            "AMC's SOAP Fault, SOAP-CLIENT, SOAP-SERVER, HTTP-<status>, AMC-REPONSE-ILLISIBLE).",
            "counter",
            ("finess", "service", "amc", "code"),
        )
        self.last_success = MetricTable(
            "rpn_establishment_last_success_timestamp_seconds",
            "Unix time of each registered establishment's last exchange answered with code 00.",
            "gauge",
            ("finess",),
        )
        self.certificate_expiry = MetricTable(
            "rpn_client_certificate_expiry_timestamp_seconds",
            "Expiry (notAfter, unix time) of the last client certificate each registered "
            "establishment presented.",
            "gauge",
            ("finess",),
        )
        self.tables = (
            self.by_establishment,
            self.codes,
            self.last_success,
            self.certificate_expiry,
        )
        #: Exchanges by (service, AMC, outcome).
        self.exchange_counts: dict[tuple[str, str, str], int] = {}
        #: Relay faults by code.
        self.error_counts: dict[str, int] = {}
        self.durations: dict[str, _Histogram] = {}
        self.upstream_durations: dict[str, _Histogram] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        registry.register(_ExchangeCollector(self))

    def record(self, exchange: ExchangeRecord) -> None:
        service = exchange.service or "unknown"
        outcome = exchange.outcome
        amc = exchange.amc or "none"
        counts = self.exchange_counts
        key = (service, amc, outcome)
        counts[key] = counts.get(key, 0) + 1
        code = exchange.code
        if code:
            errors = self.error_counts
            errors[code] = errors.get(code, 0) + 1
        histogram = self.durations.get(service)
        if histogram is None:
            histogram = self.durations[service] = _Histogram()
        histogram.observe(exchange.total_seconds)
        upstream_seconds = exchange.upstream_seconds
        if upstream_seconds is not None:
            histogram = self.upstream_durations.get(exchange.amc)
            if histogram is None:
                histogram = self.upstream_durations[exchange.amc] = _Histogram()
            histogram.observe(upstream_seconds)
        self.bytes_in += exchange.bytes_in
        self.bytes_out += exchange.bytes_out
        if exchange.registered:
            finess = exchange.finess
            self.by_establishment.inc((finess, service, amc, outcome))
            code = exchange.business_code or exchange.amc_code or code
            if code:
                self.codes.inc((finess, service, amc, code))
            if outcome == "ok":
                self.last_success.set((finess,), self._clock.seconds())
            if exchange.certificate_expiry is not None:
                self.certificate_expiry.set((finess,), exchange.certificate_expiry)


#: What the access log writes of a record (dataclasses.asdict deep-copies: too slow here).
_LOGGED_FIELDS = tuple(
    f.name
    for f in fields(ExchangeRecord)
    if f.name not in ("registered", "certificate_expiry", "amc_name")
)


_string = json.encoder.encode_basestring_ascii


def _number(value: float | None) -> str:
    return "null" if value is None else repr(value)


def _json_line(r: ExchangeRecord) -> str:
    """The access-log line of *r*: what ``json.dumps`` writes, at a third of its cost."""
    return (
        f'{{"exchange_id":{_string(r.exchange_id)},"finess":{_string(r.finess)},'
        f'"amc":{_string(r.amc)},"service":{_string(r.service)},'
        f'"version":{_string(r.version)},"outcome":{_string(r.outcome)},'
        f'"code":{_string(r.code)},"business_code":{_string(r.business_code)},'
        f'"amc_code":{_string(r.amc_code)},'
        f'"status":{r.status:d},"upstream_seconds":{_number(r.upstream_seconds)},'
        f'"total_seconds":{_number(r.total_seconds)},"bytes_in":{r.bytes_in:d},'
        f'"bytes_out":{r.bytes_out:d}}}\n'
    )


@implementer(IStatsSink)
class AccessLog:
    """One JSON line per exchange, to a file or as an event in the service log.

    With a *clock*, the lines of the exchanges recorded in one turn of the reactor are written
    together, once that turn is over (``callLater(0)``): one write to the file for many
    exchanges under load, and each line in the file before the next turn sends any answer's
    bytes. ``close`` and ``reopen`` write what is pending first.
    """

    log = Logger()

    def __init__(
        self,
        stream: IO[str] | None = None,
        path: Path | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self._stream = stream
        self._path = path
        self._clock = clock
        self._pending: list[str] = []
        self._flush_call: IDelayedCall | None = None

    @classmethod
    def to_file(cls, path: Path, clock: IReactorTime | None = None) -> AccessLog:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path.open("a", encoding="utf-8", buffering=1), path, clock)

    def reopen(self) -> None:
        """Reopen the file (after logrotate moved it away), on reload."""
        if self._path is not None and self._stream is not None:
            self.flush()
            self._stream.close()
            self._stream = self._path.open("a", encoding="utf-8", buffering=1)

    def record(self, exchange: ExchangeRecord) -> None:
        if self._stream is None or self._stream.closed:
            # No file (or no longer one, at the very end of a stop): the service log
            # gets the record instead, so that no exchange goes unrecorded.
            entry = {name: getattr(exchange, name) for name in _LOGGED_FIELDS}
            self.log.info(
                "exchange {exchange_id} finess={finess} amc={amc} service={service} "
                "outcome={outcome} code={code} status={status} elapsed={total_seconds:.4f}",
                **entry,
            )
        elif self._clock is None:
            self._stream.write(_json_line(exchange))
        else:
            self._pending.append(_json_line(exchange))
            if self._flush_call is None:
                self._flush_call = self._clock.callLater(0, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_call = None
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - logged; the next lines are still written
            self.log.failure("access log write failed")

    def flush(self) -> None:
        """Write the lines still pending (one write)."""
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        pending, self._pending = self._pending, []
        if pending and self._stream is not None:
            self._stream.write("".join(pending))

    def close(self) -> None:
        """Close the file (on stop, once every exchange has been recorded)."""
        if self._stream is not None:
            try:
                self.flush()
            finally:
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
