"""Reports as JSON, CSV and HTML with server-rendered SVG charts (no script, no external asset).

Figures carry ``data-indicator`` / ``data-count`` attributes so tests and tools read them
without scraping prose. Every value is escaped; nothing here is personal data.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from indicators.compute import INDICATORS, AmcLatency, EstablishmentReport, Indicator, Snapshot
from indicators.model import CLASS_LABELS, CLASSES

SERVICE_COLOURS = {"IDB": "#1f77b4", "SIM": "#2ca02c", "CLC": "#9467bd", "DEL": "#8c564b"}
CLASS_COLOURS = {
    "ok": "#2ca02c",
    "refused": "#ff7f0e",
    "technical": "#d62728",
    "rejected": "#7f7f7f",
    "abandoned": "#bcbd22",
}


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


# -- JSON ---------------------------------------------------------------------------------------


def report_document(report: EstablishmentReport, snapshot: Snapshot) -> dict[str, Any]:
    """The establishment's page as plain data (the JSON answer, and what the HTML shows)."""
    return {
        "finess": report.finess,
        "generated_at": _iso(report.generated_at),
        "window_days": report.window_days,
        "totals": {c: report.total(c) for c in CLASSES} | {"all": report.total()},
        "by_service": {s: dict(c) for s, c in report.counts.items()},
        "daily": [{"day": d.day, **d.by_service} for d in report.daily],
        "top_codes": [{"code": c, "count": n} for c, n in report.top_codes],
        "indicators": {
            i.key: {
                "label": i.label,
                "unit": i.unit,
                "better": i.better,
                "value": report.figures[i.key].value,
                "national_median": report.figures[i.key].national_median,
                "percentile": report.figures[i.key].percentile,
                "peers": report.figures[i.key].peers,
            }
            for i in INDICATORS
        },
        "certificate_expiry": _iso(report.certificate_expiry),
        "last_success": _iso(report.last_success),
        "amc_latency": _latency_document(snapshot),
    }


def _latency_document(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "national_median": {
            "p50": snapshot.amc_latency_median[0],
            "p95": snapshot.amc_latency_median[1],
        },
        "amcs": [
            {"amc": a.amc, "exchanges": a.exchanges, "p50": a.p50, "p95": a.p95}
            for a in snapshot.amc_latency
        ],
    }


def agency_document(snapshot: Snapshot) -> dict[str, Any]:
    reports = snapshot.reports()
    return {
        "generated_at": _iso(snapshot.generated_at),
        "window_days": snapshot.window_days,
        "national_median": dict(snapshot.national_median),
        "establishments": [
            {
                "finess": r.finess,
                "totals": {c: r.total(c) for c in CLASSES} | {"all": r.total()},
                "indicators": {k: c.value for k, c in r.figures.items()},
                "percentiles": {k: c.percentile for k, c in r.figures.items()},
            }
            for r in reports
        ],
        "amc_latency": _latency_document(snapshot),
    }


def to_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, sort_keys=False).encode() + b"\n"


# -- CSV ----------------------------------------------------------------------------------------

CSV_COLUMNS = ("finess", "section", "key", "dimension", "value", "national_median", "percentile")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def report_rows(report: EstablishmentReport) -> Iterable[tuple[str, ...]]:
    """Long-format rows: one per figure, per (service, outcome class), per day and service."""
    f = report.finess
    for i in INDICATORS:
        c = report.figures[i.key]
        yield (
            f,
            "indicator",
            i.key,
            i.unit,
            _num(c.value),
            _num(c.national_median),
            _num(c.percentile),
        )
    for service, by_class in report.counts.items():
        for cls, n in by_class.items():
            yield (f, "exchanges", service, cls, str(n), "", "")
    for day in report.daily:
        for service, n in day.by_service.items():
            yield (f, "daily", day.day, service, str(n), "", "")
    for code, n in report.top_codes:
        yield (f, "code", code, "", str(n), "", "")


def to_csv(reports: Sequence[EstablishmentReport]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        writer.writerows(report_rows(report))
    return out.getvalue().encode()


# -- HTML and SVG ------------------------------------------------------------------------------


def format_value(indicator: Indicator, value: float | None) -> str:
    if value is None:
        return "—"
    if indicator.unit == "ratio":
        return f"{value * 100:.1f} %" if indicator.key != "idb_clc_ratio" else f"{value:.2f}"
    if indicator.unit == "days":
        return f"{value:.0f} days"
    if indicator.unit == "hours":
        return f"{value:.1f} h ago"
    return f"{value:.0f}"


def _reading(indicator: Indicator, percentile: float | None) -> str:
    if percentile is None:
        return ""
    if indicator.better == "higher":
        return f"better than {percentile:.0f} % of peers"
    if indicator.better == "lower":
        return f"better than {100 - percentile:.0f} % of peers"
    return f"percentile {percentile:.0f}"


def daily_chart(report: EstablishmentReport, width: int = 640, height: int = 200) -> str:
    """Stacked bars: exchanges per service and day."""
    days = report.daily
    peak = max((d.total for d in days), default=0) or 1
    left, bottom, top = 40, 30, 10
    plot_h = height - bottom - top
    slot = (width - left) / max(1, len(days))
    parts = [
        f'<svg id="daily-volume" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>Exchanges per service and day, {len(days)} days</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#444"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10">{peak}</text>',
    ]
    for i, day in enumerate(days):
        x = left + i * slot + slot * 0.15
        y: float = top + plot_h
        for service, n in day.by_service.items():
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{h:.1f}" fill="{SERVICE_COLOURS.get(service, "#17becf")}" '
                f'data-day="{escape(day.day)}" data-service="{escape(service)}" data-count="{n}">'
                f"<title>{escape(day.day)} {escape(service)}: {n}</title></rect>"
            )
        if i % max(1, len(days) // 7) == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - 12}" text-anchor="middle" '
                f'font-size="10">{escape(day.day[5:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def outcome_chart(report: EstablishmentReport, width: int = 640, height: int = 36) -> str:
    """One horizontal bar split by outcome class."""
    total = report.total()
    parts = [
        f'<svg id="outcomes" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        "<title>Exchanges by outcome</title>",
    ]
    x = 0.0
    for cls in CLASSES:
        n = report.total(cls)
        if not n or not total:
            continue
        w = width * n / total
        parts.append(
            f'<rect class="segment" x="{x:.1f}" y="4" width="{w:.1f}" height="{height - 8}" '
            f'fill="{CLASS_COLOURS[cls]}" data-class="{cls}" data-count="{n}">'
            f"<title>{escape(CLASS_LABELS[cls])}: {n}</title></rect>"
        )
        x += w
    parts.append("</svg>")
    return "".join(parts)


def comparison_chart(
    key: str, value: float | None, median: float | None, peers: Sequence[float]
) -> str:
    """A strip from the peers' minimum to maximum, with the median and this establishment."""
    width, height, pad = 220, 24, 8
    parts = [
        f'<svg class="chart compare" id="compare-{escape(key)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
    ]
    if peers and value is not None:
        low, high = min(peers[0], value), max(peers[-1], value)
        span = (high - low) or 1.0

        def at(v: float) -> float:
            return pad + (width - 2 * pad) * (v - low) / span

        parts.append(
            f'<line x1="{pad}" y1="12" x2="{width - pad}" y2="12" stroke="#bbb" stroke-width="4"/>'
        )
        if median is not None:
            parts.append(
                f'<line class="median" x1="{at(median):.1f}" y1="3" x2="{at(median):.1f}" y2="21" '
                f'stroke="#333" stroke-width="2"><title>national median</title></line>'
            )
        parts.append(
            f'<circle class="self" cx="{at(value):.1f}" cy="12" r="5" fill="#d62728">'
            f"<title>this establishment</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def latency_chart(latencies: Sequence[AmcLatency], width: int = 640) -> str:
    """Horizontal bars: p50 and p95 upstream latency per AMC."""
    rows = [a for a in latencies if a.p95 is not None or a.p50 is not None][:20]
    height = 20 + 18 * len(rows)
    peak = max((a.p95 or a.p50 or 0.0 for a in rows), default=0.0) or 1.0
    left = 90
    parts = [
        f'<svg id="latency" class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        "<title>Upstream latency per AMC (p50, p95)</title>",
    ]
    for i, a in enumerate(rows):
        y = 10 + 18 * i
        parts.append(
            f'<text x="{left - 6}" y="{y + 11}" text-anchor="end" font-size="11">'
            f"{escape(a.amc)}</text>"
        )
        for q, v, colour, h in (("p95", a.p95, "#aec7e8", 14), ("p50", a.p50, "#1f77b4", 8)):
            if v is None:
                continue
            w = (width - left - 10) * v / peak
            parts.append(
                f'<rect class="latency" x="{left}" y="{y + (14 - h) / 2:.1f}" width="{w:.1f}" '
                f'height="{h}" fill="{colour}" data-amc="{escape(a.amc)}" data-quantile="{q}" '
                f'data-seconds="{v:.4f}">'
                f"<title>{escape(a.amc)} {q}: {v * 1000:.0f} ms</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:980px;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#666;font-size:.9em}"
    ".legend span{display:inline-block;margin-right:1rem}"
    ".legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em}"
)


def _tag(name: str, content: str = "", **attrs: str) -> str:
    """An element; *content* is already HTML, attribute values are escaped here."""
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items()
    )
    return f"<{name}{rendered}>{content}</{name}>"


def _row(*cells: str, **attrs: str) -> str:
    return _tag("tr", "".join(cells), **attrs)


def _page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    ).encode()


def _legend(colours: dict[str, str], labels: dict[str, str] | None = None) -> str:
    items = "".join(
        f'<span><i style="background:{c}"></i>{escape((labels or {}).get(k, k))}</span>'
        for k, c in colours.items()
    )
    return f'<p class="legend">{items}</p>'


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def _count_cell(n: int, **attrs: str) -> str:
    return _tag("td", str(n), class_="num", data_count=str(n), **attrs)


def _figures_table(report: EstablishmentReport, snapshot: Snapshot) -> str:
    rows = [
        _row(
            *(_tag("th", h) for h in ("", "This establishment", "National median")),
            _tag("th", "Among peers"),
            _tag("th", "Position"),
        )
    ]
    for i in INDICATORS:
        c = report.figures[i.key]
        chart = comparison_chart(i.key, c.value, c.national_median, snapshot.distribution(i.key))
        rows.append(
            _row(
                _tag("th", escape(i.label)),
                _tag(
                    "td",
                    escape(format_value(i, c.value)),
                    class_="num value",
                    data_value=_num(c.value),
                ),
                _tag("td", escape(format_value(i, c.national_median)), class_="num median"),
                _tag("td", escape(_reading(i, c.percentile)), class_="percentile"),
                _tag("td", chart),
                data_indicator=i.key,
            )
        )
    return _tag("table", "".join(rows), id="figures")


def _service_table(report: EstablishmentReport) -> str:
    head = _row(
        _tag("th", "Service"),
        *(_tag("th", escape(CLASS_LABELS[c])) for c in CLASSES),
        _tag("th", "Total"),
    )
    rows = [
        _row(
            _tag("th", escape(s)),
            *(_count_cell(n, data_class=cls) for cls, n in by.items()),
            _count_cell(sum(by.values()), data_class="all"),
            data_service=s,
        )
        for s, by in report.counts.items()
    ]
    totals = _row(
        _tag("th", "All"),
        *(_count_cell(report.total(c), data_class=c) for c in CLASSES),
        _count_cell(report.total(), data_class="all"),
        id="totals",
    )
    return _tag("table", head + "".join(rows) + totals, id="by-service")


def _codes_table(report: EstablishmentReport) -> str:
    rows = [_row(_tag("th", "Code"), _tag("th", "Exchanges"))]
    rows += [
        _row(_tag("td", _tag("code", escape(code))), _count_cell(n), data_code=code)
        for code, n in report.top_codes
    ]
    if not report.top_codes:
        rows.append(_row(_tag("td", "No error code in the window.", colspan="2", class_="muted")))
    return _tag("table", "".join(rows), id="codes")


def _latency_table(snapshot: Snapshot) -> str:
    rows = [_row(*(_tag("th", h) for h in ("AMC", "Exchanges", "p50", "p95")))]
    rows += [
        _row(
            _tag("td", escape(a.amc)),
            _count_cell(a.exchanges),
            _tag("td", _ms(a.p50), class_="num"),
            _tag("td", _ms(a.p95), class_="num"),
            data_amc=a.amc,
        )
        for a in snapshot.amc_latency[:20]
    ]
    return _tag("table", "".join(rows), id="amc-latency")


def report_html(report: EstablishmentReport, snapshot: Snapshot) -> bytes:
    """The establishment's page."""
    f = escape(report.finess)
    m50, m95 = snapshot.amc_latency_median
    read_at = escape(_iso(report.generated_at) or "")
    expiry = escape(_iso(report.certificate_expiry) or "unknown")
    success = escape(_iso(report.last_success) or "none in the window")
    body = "\n".join(
        (
            f'<h1>ROC indicators — establishment <span id="finess">{f}</span></h1>',
            f'<p class="muted">Last {report.window_days} days, read at {read_at}. '
            f"Compared with {report.figures['exchanges'].peers} establishments with traffic "
            "in the same period. PiANO project model of ROC.</p>",
            "<h2>Figures</h2>",
            _figures_table(report, snapshot),
            "<h2>Volumes per service and day</h2>",
            _legend(SERVICE_COLOURS),
            daily_chart(report),
            "<h2>Business refusals and technical errors</h2>",
            _legend(CLASS_COLOURS, CLASS_LABELS),
            outcome_chart(report),
            _service_table(report),
            "<h2>Top error codes</h2>",
            _codes_table(report),
            "<h2>Latency per AMC (all establishments)</h2>",
            '<p class="muted">Time AMCs took to answer through the relay; national median '
            f"across AMCs: p50 {_ms(m50)}, p95 {_ms(m95)}.</p>",
            latency_chart(snapshot.amc_latency),
            _latency_table(snapshot),
            "<h2>Certificate and activity</h2>",
            f'<p>Client certificate valid until <span id="certificate-expiry">{expiry}</span>; '
            f'last successful exchange <span id="last-success">{success}</span>.</p>',
            f'<p class="muted">Also as <a href="{f}.json">JSON</a> and '
            f'<a href="{f}.csv">CSV</a>.</p>',
        )
    )
    return _page(f"ROC indicators {report.finess}", body)


def agency_html(snapshot: Snapshot) -> bytes:
    """Every establishment with traffic, worst success rate first, each linking to its page."""
    head = _row(_tag("th", "FINESS"), *(_tag("th", escape(i.label)) for i in INDICATORS))
    medians = _row(
        _tag("th", "National median"),
        *(
            _tag("td", escape(format_value(i, snapshot.national_median[i.key])), class_="num")
            for i in INDICATORS
        ),
        id="national-median",
    )
    rows = [
        _row(
            _tag("td", _tag("a", escape(r.finess), href=f"establishments/{r.finess}")),
            *(
                _tag(
                    "td",
                    escape(format_value(i, r.figures[i.key].value)),
                    class_="num",
                    data_indicator=i.key,
                    data_value=_num(r.figures[i.key].value),
                )
                for i in INDICATORS
            ),
            data_finess=r.finess,
        )
        for r in snapshot.reports()
    ]
    read_at = escape(_iso(snapshot.generated_at) or "")
    body = "\n".join(
        (
            "<h1>ROC indicators — agency view</h1>",
            f'<p class="muted">Last {snapshot.window_days} days, read at {read_at}; '
            f"{len(snapshot.peers)} establishments with traffic, worst success rate first. "
            'Also as <a href="agency.json">JSON</a> and <a href="agency.csv">CSV</a>.</p>',
            _tag("table", head + medians + "".join(rows), id="establishments"),
            "<h2>Latency per AMC</h2>",
            latency_chart(snapshot.amc_latency),
            _latency_table(snapshot),
        )
    )
    return _page("ROC indicators — agency", body)


def message_html(title: str, message: str) -> bytes:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
