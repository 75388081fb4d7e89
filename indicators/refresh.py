"""Periodic reading of Prometheus into the snapshot every page is rendered from."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from indicators.compute import Snapshot
from indicators.fetch import observe
from indicators.lifecycle import Lifecycle
from indicators.model import Observations
from indicators.progress import (
    IProgressSource,
    Progress,
    ProgressError,
    ProgressReading,
    Unavailable,
)
from indicators.prometheus import IPrometheus, PrometheusError
from indicators.raccordement import progress_targets

#: Progress requests to Mutuelle ANS in flight at once.
PROGRESS_CONCURRENCY = 8


class Refresher:
    """Holds the latest Snapshot; ``refresh`` replaces it, keeping the old one on failure."""

    log = Logger()

    def __init__(
        self,
        prometheus: IPrometheus,
        clock: IReactorTime,
        window_days: int,
        daily_days: int,
        top_codes: int,
        minimum_peers: int = 5,
        progress: IProgressSource | None = None,
        stuck_days: int = 7,
    ) -> None:
        self._prometheus = prometheus
        self._progress = progress
        self._stuck_days = stuck_days
        #: (failed, first reason) of the last progress reading: logged when it changes
        self._progress_failures: tuple[int, str | None] = (0, None)
        self._clock = clock
        self._window_days = window_days
        self._daily_days = daily_days
        self._top_codes = top_codes
        self._minimum_peers = minimum_peers
        self.snapshot: Snapshot | None = None
        #: When readings started failing (None while the last one succeeded): pages then say
        #: their figures are stale.
        self.failing_since: float | None = None
        self.failures_total = 0
        self.refreshes_total = 0
        self.last_duration: float | None = None

    def refresh(self) -> Deferred[None]:
        """Read Prometheus now; never fails (a failure is logged and counted)."""
        return Deferred.fromCoroutine(self._refresh())

    async def _refresh(self) -> None:
        started = self._clock.seconds()
        cpu = time.process_time()
        try:
            observations = await observe(
                self._prometheus, started, self._window_days, self._daily_days
            )
            progress = await self._read_progress(observations)
            snapshot = Snapshot(
                observations,
                self._top_codes,
                self._minimum_peers,
                progress=progress,
                qualification_configured=self._progress is not None,
                stuck_days=self._stuck_days,
            )
        except PrometheusError as exc:
            self._failed(started)
            self.log.warn("cannot read Prometheus: {reason}", reason=str(exc))
            return
        except Exception:  # noqa: BLE001 - a bug here must not stop the next readings
            self._failed(started)
            self.log.failure("indicators refresh failed")
            return
        self.snapshot = snapshot
        self.failing_since = None
        self.refreshes_total += 1
        self.last_duration = self._clock.seconds() - started
        self.log.debug(
            "indicators refreshed: {peers} establishments, cpu={cpu:.3f}s",
            peers=len(snapshot.peers),
            cpu=time.process_time() - cpu,
        )

    async def _read_progress(self, observations: Observations) -> dict[str, ProgressReading]:
        """Each non-production FINESS's progress from Mutuelle ANS; a failure is that FINESS's
        "progression indisponible" with why, never a failed refresh."""
        source = self._progress
        if source is None:
            return {}
        limit = DeferredSemaphore(PROGRESS_CONCURRENCY)
        targets = progress_targets(observations.lifecycles)

        async def one(lifecycle: Lifecycle) -> ProgressReading:
            try:
                found: Progress = await limit.run(
                    source.progress, lifecycle.finess, lifecycle.sectors
                )
                return found
            except ProgressError as exc:
                return Unavailable(str(exc))
            except Exception:  # noqa: BLE001 - one bad answer must not hide the others
                self.log.failure(
                    "qualification progress of {finess} failed", finess=lifecycle.finess
                )
                return Unavailable("erreur du service des indicateurs")

        readings = await gatherResults([Deferred.fromCoroutine(one(lc)) for lc in targets])
        failed = [r for r in readings if isinstance(r, Unavailable)]
        summary = (len(failed), failed[0].reason if failed else None)
        if failed and summary != self._progress_failures:  # once per change, not every refresh
            self.log.warn(
                "qualification progress unavailable for {failed} of {asked} establishments: "
                "{reason}",
                failed=len(failed),
                asked=len(targets),
                reason=failed[0].reason,
            )
        self._progress_failures = summary
        return {lc.finess: r for lc, r in zip(targets, readings, strict=True)}

    def _failed(self, at: float) -> None:
        self.failures_total += 1
        if self.failing_since is None:
            self.failing_since = at


class RefreshCollector:
    """The service's own health, read at scrape time."""

    def __init__(self, refresher: Refresher, clock: IReactorTime) -> None:
        self._refresher = refresher
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "indicators_refreshes",
            "Readings of Prometheus that produced a new snapshot.",
            value=self._refresher.refreshes_total,
        )
        yield CounterMetricFamily(
            "indicators_refresh_failures",
            "Readings of Prometheus that failed (the previous snapshot is kept).",
            value=self._refresher.failures_total,
        )
        snapshot = self._refresher.snapshot
        if snapshot is not None:
            yield GaugeMetricFamily(
                "indicators_snapshot_age_seconds",
                "Seconds since the snapshot the pages show was read.",
                value=self._clock.seconds() - snapshot.generated_at,
            )


def register(registry: CollectorRegistry, refresher: Refresher, clock: IReactorTime) -> None:
    registry.register(RefreshCollector(refresher, clock))
