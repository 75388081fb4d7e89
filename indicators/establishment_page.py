"""The establishment's page, in French: what happened to its exchanges and what to do."""

from __future__ import annotations

from html import escape

from indicators import charts, french
from indicators.agency import amc_health, anomalies
from indicators.compute import (
    CERTIFICATE_CRITICAL_DAYS,
    CERTIFICATE_WARNING_DAYS,
    INDICATORS,
    EstablishmentReport,
    Snapshot,
)
from indicators.html import (
    CLASS_GLOSSARY,
    count_cell,
    format_value,
    glossary,
    glossary_link,
    head,
    legend,
    num,
    page,
    row,
    stale_banner,
    tag,
    week_table,
)
from indicators.model import CLASS_ACTOR, CLASS_LABELS, CLASSES, OUTCOME_LABELS
from indicators.raccordement import is_watch_alert, standing
from indicators.raccordement_page import anomalies_list, establishment_section
from roc.returncodes import NORMAL

#: The relay records "unknown" when it refused a request before reading its service.
SERVICE_NAMES = {"unknown": "non lu (refusée avant lecture)"}


def _figures_table(report: EstablishmentReport, snapshot: Snapshot) -> str:
    position_title = "Position" + glossary_link("position")
    rows = [head("", "Cet établissement", "Médiane nationale", position_title)]
    for i in INDICATORS:
        c = report.figures[i.key]
        if c.shown and c.position is not None:
            position = charts.position(i.key, c)
            median = escape(format_value(i, c.national_median))
        elif i.better == "neutral":
            position = tag("span", "sans objet", class_="muted")
            median = (
                escape(format_value(i, c.national_median))
                if c.peers >= snapshot.minimum_peers
                else "—"
            )
        else:
            position = tag(
                "span",
                f"non comparé : {c.peers} établissement(s) seulement "
                f"(minimum {snapshot.minimum_peers})",
                class_="muted no-compare",
            )
            median = "—"
        rows.append(
            row(
                tag("th", escape(i.label) + glossary_link(i.glossary)),
                tag(
                    "td",
                    escape(format_value(i, c.value)),
                    class_="num value",
                    data_value=num(c.value),
                ),
                tag("td", median, class_="num median"),
                tag("td", position),
                data_indicator=i.key,
            )
        )
    return tag("table", "".join(rows), id="figures")


def _service_table(report: EstablishmentReport) -> str:
    head = row(
        tag("th", "Service"),
        *(tag("th", escape(CLASS_LABELS[c]) + glossary_link(CLASS_GLOSSARY[c])) for c in CLASSES),
        tag("th", "Total"),
    )
    rows = [
        row(
            tag("th", escape(SERVICE_NAMES.get(s, s))),
            *(count_cell(by.get(cls, 0), data_class=cls) for cls in CLASSES),
            count_cell(sum(by.values()), data_class="all"),
            data_service=s,
        )
        for s, by in report.counts.items()
    ]
    totals = row(
        tag("th", "Tous"),
        *(count_cell(report.total(c), data_class=c) for c in CLASSES),
        count_cell(report.total(), data_class="all"),
        id="totals",
    )
    actors = row(
        tag("th", "Qui agit"),
        *(tag("td", escape(CLASS_ACTOR[c]), class_="muted") for c in CLASSES),
        tag("td", ""),
    )
    return tag("table", head + "".join(rows) + totals + actors, id="by-service")


def _codes_table(report: EstablishmentReport) -> str:
    rows = [head("Code", "Signification", "Service", "AMC", "Nature", "Que faire", "Échanges")]
    for r in report.codes:
        d = r.description
        kind = "réponse normale" if d.kind == NORMAL else f"erreur ({d.who})"
        rows.append(
            row(
                tag("td", tag("code", escape(r.code))),
                tag("td", escape(d.label), class_="label"),
                tag("td", escape(r.service)),
                tag("td", f"{escape(r.amc)}<br>" + tag("span", escape(r.amc_name), class_="muted")),
                tag("td", escape(kind), class_="kind " + d.kind),
                tag("td", escape(d.action), class_="muted"),
                count_cell(r.count),
                data_code=r.code,
                data_service=r.service,
                data_amc=r.amc,
                data_kind=d.kind,
            )
        )
    if not report.codes:
        rows.append(row(tag("td", "Aucun code reçu sur la période.", colspan="7", class_="muted")))
    return tag("table", "".join(rows), id="codes")


def _amc_errors_table(report: EstablishmentReport) -> str:
    rows = [head("AMC", "Nom", "Échanges avec elle", "Erreurs techniques", "Taux", "Détail")]
    for a in report.amc_errors:
        detail = " ; ".join(
            f"{OUTCOME_LABELS.get(o, o)} : {french.number(n)}" for o, n in sorted(a.errors.items())
        )
        rows.append(
            row(
                tag("td", escape(a.amc)),
                tag("td", escape(a.name), class_="name"),
                count_cell(a.exchanges),
                count_cell(a.total, class_="num errors"),
                tag("td", french.percent(a.rate), class_="num"),
                tag("td", escape(detail), class_="muted"),
                data_amc=a.amc,
                data_errors=str(a.total),
            )
        )
    for outcome, n in sorted(report.relay_errors.items()):
        rows.append(
            row(
                tag("td", "—"),
                tag("td", "relais", class_="name"),
                tag("td", ""),
                count_cell(n),
                tag("td", ""),
                tag("td", escape(OUTCOME_LABELS.get(outcome, outcome)), class_="muted"),
                data_relay=outcome,
            )
        )
    if len(rows) == 1:
        rows.append(
            row(tag("td", "Aucune erreur technique sur la période.", colspan="6", class_="muted"))
        )
    return tag("table", "".join(rows), id="amc-errors")


def _certificate(report: EstablishmentReport) -> str:
    c = report.certificate
    if c.expiry is None or c.days_left is None:
        return tag(
            "p",
            "Aucun certificat client vu sur la période.",
            id="certificate",
            data_status="unknown",
        )
    text = (
        f"Certificat client valide jusqu'au {french.date_time(c.expiry)} "
        f"({french.days_left(c.days_left)})"
    )
    advice = {
        "ok": f"plus de {CERTIFICATE_WARNING_DAYS} jours : rien à faire.",
        "warning": f"moins de {CERTIFICATE_WARNING_DAYS} jours : commander son renouvellement.",
        "critical": f"moins de {CERTIFICATE_CRITICAL_DAYS} jours : le renouveler d'urgence, "
        "sans quoi les échanges seront refusés.",
        "expired": "expiré : les échanges sont refusés ; installer un certificat valide.",
    }[c.status]
    css = (
        "alert"
        if c.status in ("critical", "expired")
        else ("banner" if c.status == "warning" else "")
    )
    return tag(
        "p",
        f"{escape(text)} — {escape(advice)}" + glossary_link("certificat"),
        id="certificate",
        data_status=c.status,
        data_days_left=f"{c.days_left:.1f}",
        class_=css,
    )


def _last_success(report: EstablishmentReport) -> str:
    if report.last_success is None:
        text = "Aucune réponse positive (00) sur la période."
    else:
        ago = french.elapsed(report.generated_at - report.last_success)
        text = f"Dernière réponse positive (00) le {french.date_time(report.last_success)} ({ago})."
    return tag("p", escape(text), id="last-success")


def _latency_rows(snapshot: Snapshot) -> list[tuple[str, str, float | None, float | None]]:
    return [
        (h.amc, h.name, h.p50, h.p95)
        for h in sorted(amc_health(snapshot), key=lambda h: (-h.exchanges, h.amc))
    ]


def _raccordement(snapshot: Snapshot, finess: str) -> str:
    """Its state, qualification progress and watch (nothing when the relays export no state)."""
    lifecycle = snapshot.observations.lifecycles.get(finess)
    if lifecycle is None:
        return ""
    return establishment_section(standing(snapshot, lifecycle), snapshot.generated_at)


def _own_anomalies(snapshot: Snapshot, finess: str) -> str:
    """The anomalies the agency follows for this establishment (none: nothing shown); the
    watch's own are in the raccordement section."""
    rows = [
        a
        for a in anomalies(snapshot.observations.alerts)
        if a.finess == finess and not is_watch_alert(a)
    ]
    if not rows:
        return ""
    return "<h2>Anomalies suivies par l'agence</h2>" + anomalies_list(rows, "anomalies", "banner")


def report_html(
    report: EstablishmentReport, snapshot: Snapshot, stale_since: float | None = None
) -> bytes:
    """The establishment's page, in French."""
    f = escape(report.finess)
    header = (
        f'<h1>Indicateurs ROC — établissement <span id="finess">{f}</span></h1>',
        f'<p class="muted">{report.window_days} derniers jours, lus le '
        f"{french.date_time(report.generated_at)} (heure de Paris). Modèle ROC du projet "
        'PiANO. <a href="#glossaire">Glossaire</a>.</p>',
        stale_banner(report.generated_at, stale_since),
    )
    if report.total() == 0:
        empty = (
            *header,
            tag(
                "p",
                f"Aucun échange de cet établissement n'a été reçu par le relais dans les "
                f"{report.window_days} derniers jours : il n'y a donc ni taux ni code à "
                "afficher. Si vos logiciels envoient des demandes ROC, vérifiez qu'ils passent "
                "par le relais avec le certificat de l'établissement.",
                id="empty",
                class_="banner",
            ),
            _raccordement(snapshot, report.finess),
            _certificate(report),
            glossary(),
        )
        return page(f"Indicateurs ROC {report.finess}", "\n".join(empty))
    body = (
        *header,
        _raccordement(snapshot, report.finess),
        "<h2>Chiffres clés</h2>",
        _figures_table(report, snapshot),
        "<h2>Tendance : taux par jour" + glossary_link("taux-erreurs") + "</h2>",
        legend(
            {"s": charts.SUCCESS_COLOUR, "e": charts.ERROR_COLOUR},
            {"s": "réponses positives (00)", "e": "erreurs (à corriger ou techniques)"},
        ),
        charts.daily_rates(report.daily),
        "<h2>Cette semaine et la précédente</h2>",
        week_table(report.week),
        "<h2>Volumes par service et par jour</h2>",
        legend(charts.SERVICE_COLOURS),
        charts.daily_volume(report.daily),
        "<h2>Issues des échanges, et qui agit</h2>",
        legend(charts.CLASS_COLOURS, CLASS_LABELS),
        charts.outcomes({c: report.total(c) for c in CLASSES}),
        _service_table(report),
        "<h2>Codes reçus</h2>",
        '<p class="muted">Chaque code avec sa signification, le service et l\'AMC : les '
        "réponses normales ne sont pas des erreurs.</p>",
        _codes_table(report),
        "<h2>Erreurs techniques par AMC" + glossary_link("techniques") + "</h2>",
        _amc_errors_table(report),
        _own_anomalies(snapshot, report.finess),
        "<h2>Certificat et activité</h2>",
        _certificate(report),
        _last_success(report),
        "<h2>Temps de réponse des AMC (tous établissements)</h2>",
        charts.latency(_latency_rows(snapshot)),
        f'<p class="muted">Aussi en <a href="{f}.json">JSON</a> et <a href="{f}.csv">CSV</a>.</p>',
        glossary(),
    )
    return page(f"Indicateurs ROC {report.finess}", "\n".join(body))


def unknown_html(finess: str) -> bytes:
    """The page of a FINESS the relays never reported: said so, not a page of zeros."""
    f = escape(finess)
    return page(
        f"Indicateurs ROC {finess}",
        f'<h1>Indicateurs ROC — FINESS <span id="finess">{f}</span></h1>'
        + tag(
            "p",
            f"Le FINESS {f} n'est pas inscrit auprès des relais ROC, et aucun échange ni "
            "certificat de cet établissement n'a été vu dans la période. Demandez son "
            "inscription à l'ANS (raccordement ROC) ; une fois inscrit, sa page affiche ses "
            "indicateurs dès son premier échange.",
            id="unknown",
            class_="banner",
        ),
    )
