"""The PromQL the service sends: pure functions of the window, so tests can read them.

Counts must be exact (an establishment compares them with its own logs), so windows are not
read with ``increase()``, which extrapolates and misses the first exchanges of a series born
inside the window. Per series, the count over a window is instead:

- ``last - first`` when the series existed before the window and did not reset;
- ``last`` when it was born inside the window (relay labels appear on their first exchange);
- ``last`` when it went down (the relay process restarted inside the window): exchanges between
  the window start and the restart are then not counted.

Series of several relay processes differ by their ``instance`` label and are summed.

Cost: the window's two ends are read, never every sample in between (a 30-day range over
60,000 series would exceed Prometheus' ``query.max-samples``). "Last" is the latest sample of
the last ``RECENT`` minutes, so a relay process that stopped less than that ago still counts;
gauges (certificate expiry, last success) are also sampled hourly over the window by a subquery.
"""

from __future__ import annotations

EXCHANGES = "rpn_establishment_exchanges_total"
CODES = "rpn_establishment_codes_total"
AMC_EXCHANGES = "rpn_exchanges_total"
UPSTREAM_BUCKETS = "rpn_upstream_duration_seconds_bucket"
CERTIFICATE_EXPIRY = "rpn_client_certificate_expiry_timestamp_seconds"
REGISTERED = "rpn_establishment_registered"
LAST_SUCCESS = "rpn_establishment_last_success_timestamp_seconds"
AMC_INFO = "rpn_amc_info"
BREAKER_STATE = "rpn_breaker_state"
LIFECYCLE = "rpn_establishment_lifecycle_since_timestamp_seconds"
WATCH_DAYS = "rpn_lifecycle_watch_days"


#: How far back the latest sample of a series is looked for.
RECENT = "15m"


def duration(seconds: float) -> str:
    """A PromQL duration of whole seconds (at least one)."""
    return f"{max(1, int(seconds))}s"


def window_count(metric: str, window: str) -> str:
    """Per-series exchanges counted by *metric* during the *window* ending at the query time."""
    last = f"last_over_time({metric}[{RECENT}])"
    first = f"{metric} offset {window}"
    return f"(({last} - {first}) >= 0 or ({last} unless {first}) or {last})"


def counts_by(metric: str, labels: tuple[str, ...], window: str) -> str:
    return f"sum by ({', '.join(labels)}) ({window_count(metric, window)})"


def exchanges(window: str) -> str:
    return counts_by(EXCHANGES, ("finess", "service", "amc", "outcome"), window)


def daily_exchanges(window: str) -> str:
    return counts_by(EXCHANGES, ("finess", "service", "outcome"), window)


def weekly_exchanges(window: str) -> str:
    """Per establishment and outcome (evaluated now and a week ago: this week vs the last)."""
    return counts_by(EXCHANGES, ("finess", "outcome"), window)


def codes(window: str) -> str:
    return counts_by(CODES, ("finess", "service", "amc", "code"), window)


def amc_exchanges(window: str) -> str:
    """Exchanges per AMC and outcome, every establishment (registered or not) included."""
    return f"{counts_by(AMC_EXCHANGES, ('amc', 'outcome'), window)} > 0"


def registered() -> str:
    """Every FINESS a relay's registration admits now (site or legal entity)."""
    return f"max by (finess) (last_over_time({REGISTERED}[{RECENT}]))"


def lifecycles() -> str:
    """Each registered FINESS's state now (value: since when). Read without
    ``last_over_time``: after a state change the old state's series is marked stale at the
    next scrape, so only the new one answers."""
    return f"max by (finess, legal_entity, role, state, sectors) ({LIFECYCLE})"


def watch_days() -> str:
    """The relays' ``lifecycle.watch_days`` (the longest, should they differ)."""
    return f"max(last_over_time({WATCH_DAYS}[{RECENT}]))"


def amc_names() -> str:
    """Every AMC the relays' annuaire knows, with its name."""
    return f"max by (amc, name) (last_over_time({AMC_INFO}[{RECENT}]))"


def breaker_states() -> str:
    """The current breaker state per AMC and relay process (value 1)."""
    return f"max by (amc, state) (last_over_time({BREAKER_STATE}[{RECENT}])) == 1"


def anomalies() -> str:
    """The anomaly alerts (etc/prometheus/rules/rpn-anomalies.yml), pending or firing."""
    return 'ALERTS{anomaly!=""}'


def anomalies_since() -> str:
    """Since when each anomaly alert is active (Unix time)."""
    return 'ALERTS_FOR_STATE{anomaly!=""}'


def amc_latency(quantile: float, window: str) -> str:
    buckets = counts_by(UPSTREAM_BUCKETS, ("amc", "le"), window)
    return f"histogram_quantile({quantile}, {buckets})"


def _latest_gauge(metric: str, window: str) -> str:
    """The gauge's largest value now, or sampled hourly over the window if its series is gone."""
    return (
        f"max by (finess) (max_over_time({metric}[{RECENT}])"
        f" or max_over_time({metric}[{window}:1h]))"
    )


def certificate_expiry(window: str) -> str:
    return _latest_gauge(CERTIFICATE_EXPIRY, window)


def last_success(window: str) -> str:
    return _latest_gauge(LAST_SUCCESS, window)
