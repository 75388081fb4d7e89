"""What a relay's ``/metrics`` scrape costs with 3,000 establishments and 400 AMCs active.

``python bench/scrape_cost.py`` drives the relay's own collectors in-process (``PrometheusStats``
fed with synthetic exchange records, ``UpstreamCollector`` over 400 AMC upstreams) and reports:

- the series count, and the size of one scrape (raw, and gzip for reference);
- the time ``generate_latest`` takes (median of ``--repeat`` runs), and the cost of one
  exchange's ``record`` call, the only part on the exchange path;
- how long the reactor stalls while a scrape is rendered, inline in the reactor thread (what
  ``rpn/admin.py`` does today) and in a worker thread (``deferToThread``), as the largest gap
  of a 1 ms heartbeat, and the ratio of the two.

``--outcomes all`` puts every establishment in every outcome of every service (the label
space's upper bound); the default mix is what a busy day looks like. No personal data: labels are
synthetic FINESS and AMC numbers.
"""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    disable_created_metrics,
)
from twisted.internet import reactor as global_reactor  # noqa: E402
from twisted.internet import task, threads  # noqa: E402
from twisted.internet.testing import MemoryReactorClock  # noqa: E402

from piano.tls import TLSFiles  # noqa: E402
from rpn.admin import (  # noqa: E402
    UpstreamCollector,
    render_metrics,
)
from rpn.stats import OUTCOMES, ExchangeRecord, PrometheusStats  # noqa: E402
from rpn.upstream import UpstreamRegistry  # noqa: E402
from tools import devpki  # noqa: E402

SERVICES = ("IDB", "SIM", "CLC", "DEL")
#: A busy day: most exchanges succeed, some are refused, a few fail.
REALISTIC = ("ok", "refused", "amc_fault", "timeout", "rejected")
CODES = ("00", "01", "02", "03", "05", "RPN-503-AMC-INDISPONIBLE", "RPN-504-AMC-DELAI")


def build(
    pki: Path, establishments: int, amcs: int, outcomes: tuple[str, ...]
) -> tuple[CollectorRegistry, PrometheusStats, list[ExchangeRecord]]:
    from piano.config import load
    from rpn.config import RpnConfig
    from rpn.service import upstream_settings  # the relay's own defaults

    config = load(
        RpnConfig,
        {
            "tls": {"certificate": "x", "private_key": "x", "ca_certificates": ["x"]},
            "upstream": {
                "certificate": str(pki / "rpn-client.pem"),
                "private_key": str(pki / "rpn-client.key"),
                "ca_certificates": [str(pki / "ca.pem")],
            },
            "annuaire": {"static_file": "x"},
        },
    )
    registry = CollectorRegistry(auto_describe=True)
    clock = MemoryReactorClock()
    stats = PrometheusStats(registry, clock)
    upstreams = UpstreamRegistry(
        clock,
        TLSFiles(pki / "rpn-client.pem", pki / "rpn-client.key", (pki / "ca.pem",)),
        upstream_settings(config),
    )
    registry.register(UpstreamCollector(upstreams))
    rng = random.Random(2026)
    amc_numbers = [f"99{n:07d}" for n in range(1, amcs + 1)]
    for amc in amc_numbers:
        upstreams.for_amc(amc)
    records = []
    for i in range(establishments):
        finess = f"99{i:07d}"
        for service in SERVICES:
            for outcome in outcomes:
                records.append(
                    ExchangeRecord(
                        finess=finess,
                        amc=rng.choice(amc_numbers),
                        service=service,
                        outcome=outcome,
                        business_code=rng.choice(CODES[:5]) if outcome in ("ok", "refused") else "",
                        code=rng.choice(CODES[5:]) if outcome == "timeout" else "",
                        registered=True,
                        certificate_expiry=1.9e9,
                        upstream_seconds=rng.uniform(0.05, 2.0),
                        total_seconds=rng.uniform(0.06, 2.1),
                        bytes_in=4096,
                        bytes_out=4096,
                    )
                )
    # Every AMC answers at least once (its latency histogram exists).
    for amc in amc_numbers:
        records.append(
            ExchangeRecord(
                finess="990000000",
                amc=amc,
                service="IDB",
                outcome="ok",
                business_code="00",
                registered=True,
                upstream_seconds=0.3,
                total_seconds=0.31,
            )
        )
    return registry, stats, records


def plain_render(records: list[ExchangeRecord]) -> tuple[float, int]:
    """Peer: the per-establishment counter kept in a plain dict and formatted by hand (what a
    custom collector writing its own exposition lines would cost), time and bytes."""
    counts: dict[tuple[str, str, str], int] = {}
    for r in records:
        key = (r.finess, r.service, r.outcome)
        counts[key] = counts.get(key, 0) + 2
    started = time.perf_counter()
    text = "".join(
        f'rpn_establishment_exchanges_total{{finess="{f}",service="{s}",outcome="{o}"}} {n}\n'
        for (f, s, o), n in counts.items()
    ).encode()
    return time.perf_counter() - started, len(text)


def series_count(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def reactor_stall(render: Callable[[], bytes], threaded: bool, rounds: int) -> float:
    """Largest gap (seconds) of a 1 ms heartbeat while *rounds* scrapes are rendered."""
    gaps: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    heartbeat = task.LoopingCall(beat)

    async def scrapes() -> None:
        for _ in range(rounds):
            if threaded:
                await threads.deferToThread(render)
            else:
                render()
            await task.deferLater(global_reactor, 0.02, lambda: None)

    def run() -> None:
        heartbeat.start(0.001)
        from twisted.internet.defer import Deferred

        d = Deferred.fromCoroutine(scrapes())
        d.addBoth(lambda _: (heartbeat.stop(), global_reactor.stop()))

    global_reactor.callWhenRunning(run)
    global_reactor.run(installSignalHandlers=False)
    return max(gaps[1:], default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--establishments", type=int, default=3000)
    parser.add_argument("--amcs", type=int, default=400)
    parser.add_argument("--outcomes", choices=("realistic", "all"), default="realistic")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--disable-created",
        action="store_true",
        help="drop the *_created series (prometheus_client.disable_created_metrics())",
    )
    args = parser.parse_args(argv)
    if args.disable_created:
        disable_created_metrics()
    outcomes = REALISTIC if args.outcomes == "realistic" else OUTCOMES
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp)
        devpki.generate(pki)
        registry, stats, records = build(pki, args.establishments, args.amcs, outcomes)
        started = time.perf_counter()
        for record in records:
            stats.record(record)
        first_pass = time.perf_counter() - started
        started = time.perf_counter()
        for record in records:
            stats.record(record)
        record_cost = (time.perf_counter() - started) / len(records)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            text = render_metrics(registry, stats.tables)
            times.append(time.perf_counter() - started)
        scrape = statistics.median(times)
        establishment_lines = [
            line
            for line in text.splitlines()
            if line.startswith(b"rpn_establishment_exchanges_total")
        ]
        plain_time, plain_bytes = plain_render(records)
        inline = reactor_stall(
            lambda: render_metrics(registry, stats.tables), threaded=False, rounds=args.repeat
        )
        # A reactor cannot be restarted: the threaded run is measured in a second process.
        import subprocess

        threaded = (
            float(
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--stall-only",
                        "--establishments",
                        str(args.establishments),
                        "--amcs",
                        str(args.amcs),
                        "--outcomes",
                        args.outcomes,
                        "--repeat",
                        str(args.repeat),
                    ]
                    + (["--disable-created"] if args.disable_created else []),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
            )
            if "--stall-only" not in (argv or sys.argv)
            else 0.0
        )
    print(
        f"establishments={args.establishments} amcs={args.amcs} outcomes={args.outcomes} "
        f"created_series={'off' if args.disable_created else 'on'} "
        f"records={len(records)} (first pass creating the series: {first_pass:.2f} s)"
    )
    print(
        f"series={series_count(text)} scrape_bytes={len(text)} "
        f"gzip_bytes={len(gzip.compress(text))}"
    )
    print(
        f"scrape render median={scrape * 1000:.0f} ms (min {min(times) * 1000:.0f}, "
        f"max {max(times) * 1000:.0f}) over {args.repeat} runs"
    )
    print(f"record() per exchange={record_cost * 1e6:.1f} us")
    share = len(establishment_lines) / max(1, series_count(text))
    print(
        f"peer: rpn_establishment_exchanges_total ({len(establishment_lines)} series, "
        f"{share:.0%} of the scrape) formatted by hand from a dict: {plain_time * 1000:.0f} ms, "
        f"{plain_bytes} bytes; prometheus_client pro rata: {scrape * share * 1000:.0f} ms "
        f"(ratio {scrape * share / plain_time:.0f}x)"
    )
    print(f"reactor stall inline={inline * 1000:.0f} ms threaded={threaded * 1000:.0f} ms")
    print(
        f"ratios: scrape/record={scrape / record_cost:.0f} "
        f"stall_inline/stall_threaded={inline / threaded if threaded else float('nan'):.1f}"
    )
    return 0


def stall_only() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stall-only", action="store_true")
    parser.add_argument("--establishments", type=int)
    parser.add_argument("--amcs", type=int)
    parser.add_argument("--outcomes")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--disable-created", action="store_true")
    args = parser.parse_args()
    if args.disable_created:
        disable_created_metrics()
    with tempfile.TemporaryDirectory() as tmp:
        pki = Path(tmp)
        devpki.generate(pki)
        outcomes = REALISTIC if args.outcomes == "realistic" else OUTCOMES
        registry, stats, records = build(pki, args.establishments, args.amcs, outcomes)
        for record in records:
            stats.record(record)
        print(
            reactor_stall(
                lambda: render_metrics(registry, stats.tables), threaded=True, rounds=args.repeat
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(stall_only() if "--stall-only" in sys.argv else main())
