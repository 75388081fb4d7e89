"""The agency's page, in French: anomalies to follow up, national figures, AMC health."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from indicators import charts, french
from indicators.agency import (
    SEVERITY_LABELS,
    STATE_LABELS,
    AmcHealth,
    Anomaly,
    amc_health,
    anomalies,
    national,
)
from indicators.compute import INDICATORS, Snapshot
from indicators.html import (
    count_cell,
    format_value,
    glossary,
    head,
    ms,
    num,
    page,
    row,
    stale_banner,
    tag,
    week_table,
)
from indicators.model import CLASS_LABELS, CLASSES
from indicators.raccordement import entities, standings
from indicators.raccordement_page import promotion_form, standings_table


def _anomalies_table(rows: Sequence[Anomaly]) -> str:
    header = head("Établissement", "Anomalie", "Gravité", "État", "Depuis", "Que faire")
    lines = [
        row(
            tag("td", tag("a", escape(a.finess), href=f"establishments/{a.finess}")),
            tag("td", escape(a.label)),
            tag("td", escape(SEVERITY_LABELS.get(a.severity, a.severity))),
            tag("td", escape(STATE_LABELS.get(a.state, a.state))),
            tag(
                "td",
                escape(french.date_time(a.since)),
                data_since=french.iso_local(a.since) or "",
            ),
            tag("td", escape(a.action), class_="muted"),
            data_finess=a.finess,
            data_anomaly=a.kind,
            data_state=a.state,
        )
        for a in rows
    ]
    if not lines:
        lines.append(row(tag("td", "Aucune anomalie en cours.", colspan="6", class_="muted")))
    return tag("table", header + "".join(lines), id="anomalies")


_BREAKER_LABELS = {
    "open": "ouvert (AMC suspendue)",
    "half_open": "en test de reprise",
    "closed": "fermé (normal)",
    "unknown": "inconnu",
}


def _amc_health_table(rows: Sequence[AmcHealth]) -> str:
    header = head(
        "AMC", "Nom", "Disjoncteur", "Échanges", "Erreurs techniques", "Taux", "Médiane", "95e c."
    )
    lines = [
        row(
            tag("td", escape(h.amc)),
            tag("td", escape(h.name), class_="name"),
            tag("td", escape(_BREAKER_LABELS[h.breaker]), data_breaker=h.breaker),
            count_cell(h.exchanges),
            count_cell(h.technical_errors),
            tag("td", french.percent(h.error_rate), class_="num", data_rate=num(h.error_rate)),
            tag("td", ms(h.p50), class_="num"),
            tag("td", ms(h.p95), class_="num"),
            data_amc=h.amc,
        )
        for h in rows
    ]
    if not lines:
        lines.append(row(tag("td", "Aucune AMC vue sur la période.", colspan="8", class_="muted")))
    return tag("table", header + "".join(lines), id="amc-health")


def agency_html(snapshot: Snapshot, stale_since: float | None = None) -> bytes:
    """The agency's follow-up: national figures, anomalies, AMC health, every establishment."""
    nation = national(snapshot)
    totals = tag(
        "table",
        head(*(CLASS_LABELS[c] for c in CLASSES), "Total")
        + row(
            *(count_cell(nation.by_class.get(c, 0), data_class=c) for c in CLASSES),
            count_cell(nation.total, data_class="all"),
        ),
        id="national",
    )
    columns = row(tag("th", "FINESS"), *(tag("th", escape(i.label)) for i in INDICATORS))
    rows = [
        row(
            tag("td", tag("a", escape(r.finess), href=f"establishments/{r.finess}")),
            *(
                tag(
                    "td",
                    escape(format_value(i, r.figures[i.key].value)),
                    class_="num",
                    data_indicator=i.key,
                    data_value=num(r.figures[i.key].value),
                )
                for i in INDICATORS
            ),
            data_finess=r.finess,
        )
        for r in snapshot.reports()
    ]
    body = "\n".join(
        (
            "<h1>Indicateurs ROC — suivi national (agence)</h1>",
            f'<p class="muted">{snapshot.window_days} derniers jours, lus le '
            f"{french.date_time(snapshot.generated_at)} (heure de Paris) ; "
            f"{nation.establishments} établissements avec des échanges. Aussi en "
            '<a href="agency.json">JSON</a> et <a href="agency.csv">CSV</a>.</p>',
            stale_banner(snapshot.generated_at, stale_since),
            "<h2>Raccordement des établissements</h2>",
            f'<p class="muted">Bloqués d\'abord (en qualification sans nouvelle étape réussie '
            f"depuis {snapshot.stuck_days} jours), puis ceux qui attendent une décision de "
            "l'agence ; progression lue auprès de Mutuelle ANS.</p>",
            standings_table(standings(snapshot)),
            "<h3>Changer l'état d'une entité juridique</h3>",
            promotion_form(entities(snapshot)),
            "<h2>Anomalies à suivre</h2>",
            '<p class="muted">Calculées en continu par les règles d\'alerte de Prometheus '
            "(les mêmes que les alertes reçues) ; « à confirmer » : la condition est vraie mais "
            "pas encore depuis toute sa durée.</p>",
            _anomalies_table(anomalies(snapshot.observations.alerts)),
            "<h2>Totaux nationaux</h2>",
            totals,
            "<h2>Tendance nationale : taux par jour</h2>",
            charts.daily_rates(nation.daily),
            week_table(nation.week),
            "<h2>Santé des AMC</h2>",
            _amc_health_table(amc_health(snapshot)),
            "<h2>Établissements (taux de réponses positives le plus bas d'abord)</h2>",
            tag("table", columns + "".join(rows), id="establishments"),
            glossary(),
        )
    )
    return page("Indicateurs ROC — agence", body)
