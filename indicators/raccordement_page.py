"""The *raccordement* on the pages, in French: an establishment's state, its qualification
progress and its watch; the agency's list of every establishment and its promotion form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from indicators import french
from indicators.agency import SEVERITY_LABELS, STATE_LABELS, Anomaly
from indicators.html import count_cell, head, num, page, row, tag
from indicators.lifecycle import STATE_LABELS as LIFECYCLE_LABELS
from indicators.lifecycle import STATES
from indicators.progress import (
    FAILED,
    NOT_PLAYED,
    PASSED,
    STATUS_LABELS,
    Progress,
    ProgressReading,
    Unavailable,
)
from indicators.promotion import MAX_REASON, Change
from indicators.raccordement import Entity, Standing, Watch


def _since(standing: Standing) -> str:
    lifecycle = standing.lifecycle
    if lifecycle.since is None:
        return "depuis une date non renseignée dans l'inscription"
    days = standing.days_in_state or 0
    elapsed = "aujourd'hui" if days == 0 else french.days(days)
    return f"depuis le {french.utc_date(lifecycle.since)} ({elapsed})"


def anomalies_list(alerts: Sequence[Anomaly], list_id: str, class_: str = "alert") -> str:
    """The anomalies as a French list: what, how serious, since when, what to do."""
    items = "".join(
        tag(
            "li",
            escape(
                f"{a.label} ({SEVERITY_LABELS.get(a.severity, a.severity)}, "
                f"{STATE_LABELS.get(a.state, a.state)}) depuis le {french.date_time(a.since)} "
                f": {a.action}"
            ),
            data_anomaly=a.kind,
            data_state=a.state,
        )
        for a in alerts
    )
    return tag("ul", items, id=list_id, class_=class_)


def progress_html(progress: ProgressReading) -> str:
    """The suite's steps: passed, failed (what was wrong, what to fix) or not yet played."""
    if isinstance(progress, Unavailable):
        return tag(
            "p",
            escape(f"Progression indisponible : {progress.reason}."),
            id="progress",
            class_="banner",
            data_status="unavailable",
        )
    failed, not_played = progress.count(FAILED), progress.count(NOT_PLAYED)
    summary = (
        f"Suite {progress.suite} : {progress.passed}/{progress.total} étapes réussies, "
        f"{failed} échouée(s), {not_played} pas encore jouée(s)."
    )
    if progress.qualified:
        summary += " Toutes les étapes sont réussies : qualifié."
    else:
        step = progress.blocking
        if step is not None:
            summary += f" Prochaine étape à réussir : « {step.title} »."
    rows = [head("Étape", "Service", "AMC", "Code attendu", "Statut", "Jouée le", "Que corriger")]
    for s in progress.steps:
        what = ""
        if s.status == FAILED:
            what = tag("span", escape(s.reason or "raison non donnée"), class_="reason")
            if s.fix:
                what += "<br>" + tag("span", escape(f"À corriger : {s.fix}"), class_="fix")
        played = french.date_time(s.played_at) if s.played_at else "—"
        if s.attempts:
            played += f" ({s.attempts} essai{'s' if s.attempts > 1 else ''})"
        rows.append(
            row(
                tag("td", escape(s.title) + "<br>" + tag("code", escape(s.id), class_="muted")),
                tag("td", escape(s.service)),
                tag("td", escape(s.amc)),
                tag("td", tag("code", escape(s.expected_code))),
                tag(
                    "td",
                    escape(STATUS_LABELS.get(s.status, s.status)),
                    class_="normal"
                    if s.status == PASSED
                    else ("error" if s.status == FAILED else "muted"),
                ),
                tag("td", escape(played)),
                tag("td", what),
                data_step=s.id,
                data_status=s.status,
            )
        )
    parts = [
        tag(
            "p",
            escape(summary),
            id="progress-summary",
            class_="" if progress.qualified else "banner",
        ),
        tag("table", "".join(rows), id="steps"),
    ]
    if progress.unmatched:
        lines = [head("Quand", "Service", "Ce qui n'allait pas", "Que corriger")]
        for u in progress.unmatched:
            lines.append(
                row(
                    tag("td", escape(french.date_time(u.time))),
                    tag("td", escape(u.service)),
                    tag("td", escape(u.reason)),
                    tag("td", escape(u.fix), class_="muted"),
                )
            )
        parts.append(
            "<h3>Échanges non conformes hors étapes</h3>"
            + tag("table", "".join(lines), id="unmatched")
        )
    return tag(
        "div",
        "".join(parts),
        id="progress",
        data_status="qualified" if progress.qualified else "in_progress",
        data_passed=str(progress.passed),
        data_failed=str(failed),
        data_not_played=str(not_played),
        data_total=str(progress.total),
    )


def watch_html(watch: Watch, at: float) -> str:
    """The watch period: when it ends, a summary per day, the watch alerts."""
    if watch.ends is None:
        when = "fin de la période inconnue (durée non exportée par les relais)"
    elif at >= watch.ends:
        last = french.utc_date(watch.ends - 1)
        when = f"période terminée le {last} : passage en production possible"
    else:
        left = max(0, int((watch.ends - at) // 86400))
        when = f"jusqu'au {french.utc_date(watch.ends - 1)} inclus ({french.days(left)} restant(s))"
    total = sum(d.exchanges for d in watch.days)
    errors = sum(d.errors for d in watch.days)
    rate = errors / total if total else None
    summary = (
        f"Sous surveillance {when}. Sur les {len(watch.days)} jour(s) lus : "
        f"{french.number(total)} échanges, taux d'erreurs {french.percent(rate)}, "
        f"{sum(d.invalid for d in watch.days)} demande(s) invalide(s), "
        f"{sum(d.rejected for d in watch.days)} refus du relais, "
        f"{watch.silent_days} jour(s) sans échange."
    )
    rows = [
        head(
            "Jour",
            "Échanges",
            "Taux d'erreurs",
            "Demandes invalides",
            "Refus du relais",
            "Silencieux",
        )
    ]
    for d in watch.days:
        rows.append(
            row(
                tag("td", escape(french.day_label(d.day))),
                count_cell(d.exchanges),
                tag("td", french.percent(d.error_rate), class_="num", data_rate=num(d.error_rate)),
                count_cell(d.invalid),
                count_cell(d.rejected),
                tag("td", "oui" if d.silent else "non", class_="error" if d.silent else ""),
                data_day=d.day,
                data_exchanges=str(d.exchanges),
                data_silent="true" if d.silent else "false",
            )
        )
    parts = [tag("p", escape(summary), id="watch-summary")]
    if watch.days_not_read:
        parts.append(
            tag(
                "p",
                f"Les {watch.days_not_read} premier(s) jour(s) de la période sont plus anciens "
                "que les jours lus (indicators.daily_days) et ne sont pas détaillés.",
                class_="muted",
            )
        )
    parts.append(tag("table", "".join(rows), id="watch-days"))
    if watch.alerts:
        parts.append("<h3>Alertes de surveillance en cours</h3>")
        parts.append(anomalies_list(watch.alerts, "watch-alerts"))
    else:
        parts.append(
            tag("p", "Aucune alerte de surveillance en cours.", id="watch-alerts", class_="muted")
        )
    return tag(
        "div",
        "".join(parts),
        id="watch",
        data_ends=french.iso_local(watch.ends) or "",
        data_firing=str(len(watch.firing)),
    )


def establishment_section(standing: Standing, at: float) -> str:
    """The *raccordement* block at the top of an establishment's page."""
    lifecycle = standing.lifecycle
    entity = (
        ""
        if lifecycle.legal_entity == lifecycle.finess
        else f" (état de son entité juridique {lifecycle.legal_entity})"
    )
    parts = [
        "<h2>Raccordement</h2>",
        tag(
            "p",
            f"État : <strong>{escape(lifecycle.label)}</strong> {escape(_since(standing))}"
            f"{escape(entity)}.",
            id="state",
            data_state=lifecycle.state,
        ),
        tag("p", escape(lifecycle.allows[:1].upper() + lifecycle.allows[1:]), id="state-allows"),
        f"<h3>Qualification (secteurs {escape(', '.join(lifecycle.sectors))})</h3>",
        progress_html(standing.progress),
    ]
    if standing.watch is not None:
        parts += ["<h3>Production sous surveillance</h3>", watch_html(standing.watch, at)]
    return tag("section", "".join(parts), id="raccordement", data_state=lifecycle.state)


def _progress_cell(progress: ProgressReading) -> str:
    if isinstance(progress, Unavailable):
        return tag(
            "td",
            escape(f"indisponible : {progress.reason}"),
            class_="muted",
            data_progress="unavailable",
        )
    text = f"{progress.passed}/{progress.total}"
    if progress.qualified:
        text += " (qualifié)"
    return tag(
        "td",
        escape(text),
        class_="num",
        data_passed=str(progress.passed),
        data_total=str(progress.total),
    )


def _step_cell(progress: ProgressReading) -> str:
    if not isinstance(progress, Progress) or progress.qualified:
        return tag("td", "—")
    step = progress.blocking
    if step is None:
        return tag("td", "—")
    status = STATUS_LABELS.get(step.status, step.status)
    return tag("td", f"{escape(step.title)} " + tag("span", f"({escape(status)})", class_="muted"))


def standings_table(standings: Sequence[Standing]) -> str:
    header = head(
        "FINESS",
        "Entité juridique",
        "État",
        "Depuis",
        "Jours",
        "Progression",
        "Étape en cours",
        "À regarder",
    )
    lines = []
    for s in standings:
        lc = s.lifecycle
        look = s.stuck or s.awaiting or ""
        if s.watch is not None and s.watch.firing:
            look = (
                look + " ; " if look else ""
            ) + f"{len(s.watch.firing)} alerte(s) de surveillance"
        lines.append(
            row(
                tag("td", tag("a", escape(lc.finess), href=f"establishments/{lc.finess}")),
                tag("td", escape(lc.legal_entity)),
                tag("td", escape(lc.label)),
                tag("td", escape(french.utc_date(lc.since))),
                tag(
                    "td",
                    "—" if s.days_in_state is None else french.number(s.days_in_state),
                    class_="num",
                ),
                _progress_cell(s.progress),
                _step_cell(s.progress),
                tag("td", escape(look), class_="alert" if s.stuck else ""),
                data_finess=lc.finess,
                data_state=lc.state,
                data_stuck="true" if s.stuck else "false",
                data_days=str(s.days_in_state) if s.days_in_state is not None else "",
            )
        )
    if not lines:
        lines.append(
            row(
                tag(
                    "td",
                    "Aucun état de raccordement exporté par les relais.",
                    colspan="8",
                    class_="muted",
                )
            )
        )
    return tag("table", header + "".join(lines), id="raccordements")


def promotion_form(entities: Mapping[str, Entity]) -> str:
    """The form: a legal entity, the target state, a reason. Its answer changes nothing."""
    if not entities:
        return ""
    options = "".join(
        tag("option", escape(f"{f} — {e.lifecycle.label}"), value=f) for f, e in entities.items()
    )
    states = "".join(tag("option", escape(LIFECYCLE_LABELS[s]), value=s) for s in STATES)
    return tag(
        "form",
        tag("label", "Entité juridique (FINESS) " + f'<select name="finess">{options}</select>')
        + " "
        + tag("label", "Nouvel état " + f'<select name="state">{states}</select>')
        + "<br>"
        + tag(
            "label",
            "Raison "
            + f'<input type="text" name="reason" size="60" maxlength="{MAX_REASON}" required>',
        )
        + " "
        + '<button type="submit">Préparer la commande</button>'
        + tag(
            "p",
            "La page prépare la commande à faire exécuter par l'exploitant des relais ; elle ne "
            "modifie rien elle-même.",
            class_="muted",
        ),
        id="promotion",
        method="post",
        action="agency/promotion",
    )


def change_html(entity: Entity, state: str, change: Change, agent: str) -> bytes:
    """The answer of an accepted form: the command to run, the change, the reload."""
    body = "\n".join(
        (
            "<h1>Changement d'état à appliquer</h1>",
            tag(
                "p",
                escape(
                    f"Entité juridique {entity.finess} : « {entity.lifecycle.label} » vers "
                    f"« {LIFECYCLE_LABELS.get(state, state)} », demandé par {agent}. Cette page "
                    "n'a rien modifié : l'exploitant des relais exécute la commande ci-dessous "
                    "sur chaque relais, puis recharge le relais."
                ),
                id="summary",
                data_finess=entity.finess,
                data_state=state,
            ),
            "<h2>1. Commande</h2>",
            tag("pre", escape(change.command), id="command"),
            "<h2>2. Ce qu'elle change dans la configuration du relais</h2>",
            tag("pre", escape(change.toml), id="toml"),
            "<h2>3. Rechargement (sans redémarrage)</h2>",
            tag("pre", escape(change.reload), id="reload"),
            '<p class="muted">La commande vérifie le passage, écrit l\'auteur et la raison dans '
            "le journal d'audit du relais et garde les commentaires du fichier. "
            '<a href="../agency">Retour à la page de l\'agence</a>.</p>',
        )
    )
    return page("Changement d'état à appliquer", body)


def refusal_html(message: str) -> bytes:
    body = (
        "<h1>Changement refusé</h1>"
        + tag("p", escape(message[:1].upper() + message[1:] + "."), id="refusal", class_="alert")
        + '<p><a href="../agency">Retour à la page de l\'agence</a>.</p>'
    )
    return page("Changement refusé", body)
