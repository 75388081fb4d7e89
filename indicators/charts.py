"""Server-rendered SVG charts (no script, no external asset), with ``data-*`` attributes that
tests and tools read instead of the prose. Every text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from indicators import french
from indicators.compute import BETTER, SAME, WORSE, Comparison
from indicators.model import CLASS_LABELS, CLASSES
from indicators.trends import DayRates

SERVICE_COLOURS = {"IDB": "#1f77b4", "SIM": "#2ca02c", "CLC": "#9467bd", "DEL": "#8c564b"}
CLASS_COLOURS = {
    "ok": "#2ca02c",
    "refused": "#98df8a",
    "invalid": "#ff7f0e",
    "rejected": "#7f7f7f",
    "technical": "#d62728",
    "abandoned": "#bcbd22",
}
VERDICT_COLOURS = {BETTER: "#2ca02c", WORSE: "#d62728", SAME: "#555555"}
VERDICT_LABELS = {
    BETTER: "meilleur que la médiane",
    WORSE: "moins bon que la médiane",
    SAME: "égal à la médiane",
}
SUCCESS_COLOUR, ERROR_COLOUR = "#2ca02c", "#d62728"


def _svg(chart_id: str, width: int, height: int, title: str, css: str = "chart") -> str:
    return (
        f'<svg id="{escape(chart_id)}" class="{css}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
    )


def daily_volume(days: Sequence[DayRates], width: int = 640, height: int = 200) -> str:
    """Stacked bars: exchanges per service and day."""
    peak = max((d.total for d in days), default=0) or 1
    left, bottom, top = 40, 30, 10
    plot_h = height - bottom - top
    slot = (width - left) / max(1, len(days))
    parts = [
        _svg("daily-volume", width, height, f"Échanges par service et par jour, {len(days)} jours"),
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#444"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="10">'
        f"{french.number(peak)}</text>",
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10">0</text>',
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
                f"<title>{french.day_label(day.day)} {escape(service)} : {n}</title></rect>"
            )
        if i % max(1, len(days) // 7) == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - 12}" text-anchor="middle" '
                f'font-size="10">{french.day_label(day.day)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def daily_rates(days: Sequence[DayRates], width: int = 640, height: int = 200) -> str:
    """Two lines over the days: success rate (00) and error rate, 0 to 100 %, with an axis.

    A day without exchanges has no point (a gap, not a zero)."""
    left, right, bottom, top = 48, 10, 30, 10
    plot_h = height - bottom - top
    slot = (width - left - right) / max(1, len(days))
    parts = [
        _svg(
            "daily-rates",
            width,
            height,
            "Taux de réponses positives et taux d'erreurs par jour",
        )
    ]
    for tick in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - tick / 100)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{"#444" if tick == 0 else "#ddd"}"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="10">'
            f"{tick}{french.NNBSP}%</text>"
        )

    def point(i: int, rate: float) -> tuple[float, float]:
        return left + slot * (i + 0.5), top + plot_h * (1 - rate)

    for name, colour, attr in (
        ("success", SUCCESS_COLOUR, "success_rate"),
        ("error", ERROR_COLOUR, "error_rate"),
    ):
        segment: list[str] = []
        segments: list[list[str]] = [segment]
        for i, day in enumerate(days):
            rate = getattr(day.rates, attr)
            if rate is None:
                segment = []
                segments.append(segment)
                continue
            x, y = point(i, rate)
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle class="rate {name}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" '
                f'data-day="{escape(day.day)}" data-rate="{rate:.4f}" '
                f'data-count="{day.rates.total}">'
                f"<title>{french.day_label(day.day)} : {french.percent(rate)} "
                f"sur {day.rates.total} échanges</title></circle>"
            )
        for points in segments:
            if len(points) > 1:
                parts.append(
                    f'<polyline class="line {name}" fill="none" stroke="{colour}" '
                    f'stroke-width="2" points="{" ".join(points)}"/>'
                )
    for i, day in enumerate(days):
        if i % max(1, len(days) // 7) == 0 or i == len(days) - 1:
            x, _ = point(i, 0)
            parts.append(
                f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle" font-size="10">'
                f"{french.day_label(day.day)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def outcomes(by_class: dict[str, int], width: int = 640, height: int = 36) -> str:
    """One horizontal bar split by outcome class."""
    total = sum(by_class.values())
    parts = [_svg("outcomes", width, height, "Échanges par issue")]
    x = 0.0
    for cls in CLASSES:
        n = by_class.get(cls, 0)
        if not n or not total:
            continue
        w = width * n / total
        parts.append(
            f'<rect class="segment" x="{x:.1f}" y="4" width="{w:.1f}" height="{height - 8}" '
            f'fill="{CLASS_COLOURS[cls]}" data-class="{cls}" data-count="{n}">'
            f"<title>{escape(CLASS_LABELS[cls])} : {n}</title></rect>"
        )
        x += w
    parts.append("</svg>")
    return "".join(parts)


def position(key: str, comparison: Comparison) -> str:
    """Where the establishment stands among its peers: an axis from "moins bon" (left) to
    "meilleur" (right), graduated in share of peers, the median in the middle, and a dot whose
    colour says better (green), worse (red) or equal (grey) than the median."""
    width, height, pad = 240, 40, 12
    parts = [
        f'<svg class="chart compare" id="compare-{escape(key)}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        "<title>Position parmi les établissements : à gauche moins bon, à droite meilleur"
        "</title>"
    ]
    if comparison.position is not None and comparison.verdict is not None:

        def at(share: float) -> float:
            return pad + (width - 2 * pad) * share / 100

        parts.append(
            f'<line x1="{pad}" y1="12" x2="{width - pad}" y2="12" stroke="#bbb" stroke-width="4"/>'
        )
        for tick in (0, 50, 100):
            parts.append(
                f'<line x1="{at(tick):.1f}" y1="6" x2="{at(tick):.1f}" y2="18" stroke="#555"/>'
            )
        parts.append(
            f'<text x="{pad}" y="34" font-size="10">moins bon</text>'
            f'<text x="{at(50):.1f}" y="34" font-size="10" text-anchor="middle">médiane</text>'
            f'<text x="{width - pad}" y="34" font-size="10" text-anchor="end">meilleur</text>'
        )
        colour = VERDICT_COLOURS[comparison.verdict]
        parts.append(
            f'<circle class="self {comparison.verdict}" cx="{at(comparison.position):.1f}" '
            f'cy="12" r="6" fill="{colour}" data-position="{comparison.position:.1f}" '
            f'data-verdict="{comparison.verdict}">'
            f"<title>cet établissement : {VERDICT_LABELS[comparison.verdict]}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def latency(rows: Sequence[tuple[str, str, float | None, float | None]], width: int = 640) -> str:
    """Horizontal bars: p50 and p95 upstream latency per AMC (number, name, p50, p95)."""
    shown = [r for r in rows if r[2] is not None or r[3] is not None][:20]
    height = 20 + 18 * len(shown)
    peak = max((r[3] or r[2] or 0.0 for r in shown), default=0.0) or 1.0
    left = 90
    parts = [_svg("latency", width, height, "Temps de réponse des AMC (médiane, 95e centile)")]
    for i, (amc, name, p50, p95) in enumerate(shown):
        y = 10 + 18 * i
        parts.append(
            f'<text x="{left - 6}" y="{y + 11}" text-anchor="end" font-size="11">'
            f"{escape(amc)}<title>{escape(name)}</title></text>"
        )
        for q, v, colour, h in (("p95", p95, "#aec7e8", 14), ("p50", p50, "#1f77b4", 8)):
            if v is None:
                continue
            w = (width - left - 10) * v / peak
            parts.append(
                f'<rect class="latency" x="{left}" y="{y + (14 - h) / 2:.1f}" width="{w:.1f}" '
                f'height="{h}" fill="{colour}" data-amc="{escape(amc)}" data-quantile="{q}" '
                f'data-seconds="{v:.4f}">'
                f"<title>{escape(name)} {q} : {french.number(v * 1000)} ms</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)
