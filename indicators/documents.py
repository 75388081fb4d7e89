"""Reports as JSON and long-format CSV: the same figures as the pages, for tools.

Times are ISO 8601 with the Europe/Paris offset; nothing here is personal data.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from indicators import french
from indicators.agency import amc_health, anomalies, national
from indicators.compute import INDICATORS, EstablishmentReport, Snapshot
from indicators.lifecycle import iso_day
from indicators.model import CLASSES
from indicators.progress import STATUSES, ProgressReading, Unavailable
from indicators.raccordement import standing, standings
from indicators.trends import Rates, WeekComparison


def _rates(rates: Rates) -> dict[str, Any]:
    return {
        "exchanges": rates.total,
        "by_class": dict(rates.by_class),
        "success_rate": rates.success_rate,
        "error_rate": rates.error_rate,
    }


def _week(week: WeekComparison) -> dict[str, Any]:
    return {"this_week": _rates(week.this_week), "previous_week": _rates(week.previous_week)}


def report_document(report: EstablishmentReport, snapshot: Snapshot) -> dict[str, Any]:
    """The establishment's page as plain data (the JSON answer, and what the HTML shows)."""
    return {
        "finess": report.finess,
        "generated_at": french.iso_local(report.generated_at),
        "window_days": report.window_days,
        "totals": {c: report.total(c) for c in CLASSES} | {"all": report.total()},
        "by_service": {s: dict(c) for s, c in report.counts.items()},
        "daily": [
            {"day": d.day, **d.by_service}
            | {"success_rate": d.rates.success_rate, "error_rate": d.rates.error_rate}
            for d in report.daily
        ],
        "week": _week(report.week),
        "codes": [
            {
                "code": r.code,
                "label": r.description.label,
                "kind": r.description.kind,
                "who": r.description.who,
                "service": r.service,
                "amc": r.amc,
                "amc_name": r.amc_name,
                "count": r.count,
            }
            for r in report.codes
        ],
        "technical_errors_by_amc": [
            {"amc": a.amc, "name": a.name, "exchanges": a.exchanges, "errors": dict(a.errors)}
            for a in report.amc_errors
        ],
        "relay_errors": dict(report.relay_errors),
        "indicators": {
            i.key: {
                "label": i.label,
                "unit": i.unit,
                "better": i.better,
                "value": report.figures[i.key].value,
                "national_median": report.figures[i.key].national_median
                if report.figures[i.key].shown
                else None,
                "position": report.figures[i.key].position,
                "verdict": report.figures[i.key].verdict,
                "peers": report.figures[i.key].peers,
                "compared": report.figures[i.key].shown,
            }
            for i in INDICATORS
        },
        "certificate": {
            "expiry": french.iso_local(report.certificate.expiry),
            "days_left": report.certificate.days_left,
            "status": report.certificate.status,
        },
        "last_success": french.iso_local(report.last_success),
        "raccordement": raccordement_document(snapshot, report.finess),
    }


def _progress(progress: ProgressReading) -> dict[str, Any]:
    if isinstance(progress, Unavailable):
        return {"available": False, "reason": progress.reason}
    return {
        "available": True,
        "suite": progress.suite,
        "qualified": progress.qualified,
        "counts": {s: progress.count(s) for s in STATUSES} | {"total": progress.total},
        "steps": [
            {"id": s.id, "title": s.title, "status": s.status, "reason": s.reason, "fix": s.fix}
            for s in progress.steps
        ],
    }


def raccordement_document(snapshot: Snapshot, finess: str) -> dict[str, Any] | None:
    """Its state, progress and watch (None when the relays export no state for it)."""
    lifecycle = snapshot.observations.lifecycles.get(finess)
    if lifecycle is None:
        return None
    s = standing(snapshot, lifecycle)
    watch = s.watch
    return {
        "state": lifecycle.state,
        "legal_entity": lifecycle.legal_entity,
        "since": None if lifecycle.since is None else iso_day(lifecycle.since),
        "days_in_state": s.days_in_state,
        "sectors": list(lifecycle.sectors),
        "progress": _progress(s.progress),
        "stuck": s.stuck,
        "watch": None
        if watch is None
        else {
            "ends": french.iso_local(watch.ends),
            "days": [
                {
                    "day": d.day,
                    "exchanges": d.exchanges,
                    "error_rate": d.error_rate,
                    "invalid": d.invalid,
                    "rejected": d.rejected,
                }
                for d in watch.days
            ],
            "alerts": [
                {"anomaly": a.kind, "state": a.state, "since": french.iso_local(a.since)}
                for a in watch.alerts
            ],
        },
    }


def agency_document(snapshot: Snapshot) -> dict[str, Any]:
    reports = snapshot.reports()
    nation = national(snapshot)
    return {
        "generated_at": french.iso_local(snapshot.generated_at),
        "window_days": snapshot.window_days,
        "national": {
            "totals": dict(nation.by_class) | {"all": nation.total},
            "week": _week(nation.week),
            "daily": [
                {"day": d.day, "exchanges": d.rates.total}
                | {"success_rate": d.rates.success_rate, "error_rate": d.rates.error_rate}
                for d in nation.daily
            ],
        },
        "national_median": dict(snapshot.national_median),
        "raccordements": [
            {
                "finess": r.finess,
                "legal_entity": r.lifecycle.legal_entity,
                "state": r.lifecycle.state,
                "since": None if r.lifecycle.since is None else iso_day(r.lifecycle.since),
                "days_in_state": r.days_in_state,
                "progress": _progress(r.progress),
                "stuck": r.stuck,
                "awaiting": r.awaiting,
            }
            for r in standings(snapshot)
        ],
        "anomalies": [
            {
                "finess": a.finess,
                "anomaly": a.kind,
                "label": a.label,
                "severity": a.severity,
                "state": a.state,
                "since": french.iso_local(a.since),
            }
            for a in anomalies(snapshot.observations.alerts)
        ],
        "amcs": [
            {
                "amc": h.amc,
                "name": h.name,
                "breaker": h.breaker,
                "exchanges": h.exchanges,
                "technical_errors": h.technical_errors,
                "error_rate": h.error_rate,
                "p50": h.p50,
                "p95": h.p95,
            }
            for h in amc_health(snapshot)
        ],
        "establishments": [
            {
                "finess": r.finess,
                "totals": {c: r.total(c) for c in CLASSES} | {"all": r.total()},
                "indicators": {k: c.value for k, c in r.figures.items()},
            }
            for r in reports
        ],
    }


def error_document(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


def to_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, sort_keys=False, ensure_ascii=False).encode() + b"\n"


# -- CSV ----------------------------------------------------------------------------------------

CSV_COLUMNS = ("finess", "section", "key", "dimension", "value", "national_median", "percentile")


def num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def report_rows(report: EstablishmentReport) -> Iterable[tuple[str, ...]]:
    """Long-format rows: one per figure, per (service, outcome class), per day and service."""
    f = report.finess
    for i in INDICATORS:
        c = report.figures[i.key]
        compared = (num(c.national_median), num(c.percentile)) if c.shown else ("", "")
        yield (f, "indicator", i.key, i.unit, num(c.value), *compared)
    for service, by_class in report.counts.items():
        for cls, n in by_class.items():
            yield (f, "exchanges", service, cls, str(n), "", "")
    for day in report.daily:
        for service, n in day.by_service.items():
            yield (f, "daily", day.day, service, str(n), "", "")
    for row in report.codes:
        yield (f, "code", row.code, f"{row.service}/{row.amc}", str(row.count), "", "")


def to_csv(reports: Sequence[EstablishmentReport]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        writer.writerows(report_rows(report))
    return out.getvalue().encode()
