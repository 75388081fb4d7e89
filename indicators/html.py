"""HTML building blocks shared by the pages: elements, French values, glossary, banners.

Attribute values are escaped here; element content is HTML already (callers escape text).
"""

from __future__ import annotations

from html import escape

from indicators import french
from indicators.compute import CERTIFICATE_CRITICAL_DAYS, CERTIFICATE_WARNING_DAYS, Indicator
from indicators.trends import WeekComparison


def num(value: float | None) -> str:
    """A machine-readable number for data-* attributes ('' when there is none)."""
    return "" if value is None else f"{value:.6g}"


def format_value(indicator: Indicator, value: float | None) -> str:
    if value is None:
        return "—"
    if indicator.key == "idb_clc_ratio":
        return french.number(value, 2)
    if indicator.unit == "ratio":
        return french.percent(value)
    return french.number(value)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:1040px;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#666;font-size:.9em}"
    ".legend span{display:inline-block;margin-right:1rem}"
    ".legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em}"
    ".banner{background:#fff3cd;border:1px solid #d9a400;padding:.6rem 1rem}"
    ".alert{background:#fde2e1;border:1px solid #d62728;padding:.6rem 1rem}"
    ".error{color:#b00}.normal{color:#2a7a2a}a.g{font-size:.8em;text-decoration:none}"
    "dt{font-weight:600;margin-top:.5rem}"
)


def tag(name: str, content: str = "", **attrs: str) -> str:
    """An element; *content* is already HTML, attribute values are escaped here."""
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items()
    )
    return f"<{name}{rendered}>{content}</{name}>"


def row(*cells: str, **attrs: str) -> str:
    return tag("tr", "".join(cells), **attrs)


def head(*titles: str) -> str:
    return row(*(tag("th", t) for t in titles))


def page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    ).encode()


def legend(colours: dict[str, str], labels: dict[str, str] | None = None) -> str:
    items = "".join(
        f'<span><i style="background:{c}"></i>{escape((labels or {}).get(k, k))}</span>'
        for k, c in colours.items()
    )
    return f'<p class="legend">{items}</p>'


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{french.number(seconds * 1000)} ms"


def count_cell(n: int, **attrs: str) -> str:
    attrs.setdefault("class_", "num")
    return tag("td", french.number(n), data_count=str(n), **attrs)


def glossary_link(anchor: str, base: str = "") -> str:
    """A link to the glossary entry *anchor*."""
    return f' <a class="g" href="{base}#g-{anchor}" title="Définition">(?)</a>'


GLOSSARY = (
    (
        "echanges",
        "Échange",
        "une demande ROC (IDB, SIM, CLC, DEL) reçue par le relais, et ce qui lui a été répondu.",
    ),
    (
        "positives",
        "Réponse positive",
        "l'AMC a répondu le code 00 (droits ouverts, prise en charge acceptée, engagement annulé).",
    ),
    (
        "autres",
        "Autre réponse de l'AMC",
        "une réponse métier normale autre que 00 (bénéficiaire "
        "inconnu, droits fermés…) : rien à corriger, le code dit quoi faire.",
    ),
    (
        "invalides",
        "Demande refusée comme invalide par l'AMC",
        "l'AMC a rejeté la demande comme "
        "mal formée (faute MUT-400-…, SOAP-CLIENT) : à corriger par l'établissement ou son "
        "éditeur.",
    ),
    (
        "relais",
        "Refus par le relais",
        "le relais a refusé la demande (fautes RPN-4xx : émetteur, "
        "routage, taille, type de contenu…) : à corriger par l'établissement.",
    ),
    (
        "techniques",
        "Erreur technique",
        "l'AMC a échoué (injoignable, trop lente, réponse coupée "
        "ou illisible, faute serveur, suspendue) ou le relais lui-même : rien à corriger dans la "
        "demande ; renvoyer plus tard.",
    ),
    ("abandons", "Abandon", "le logiciel de l'établissement a raccroché avant la réponse."),
    ("clc-idb", "CLC par IDB", "nombre de calculs (CLC) par identification de droits (IDB)."),
    (
        "position",
        "Position parmi les établissements",
        "part des établissements ayant des "
        "échanges sur la période que celui-ci fait mieux, les égalités comptant pour moitié ; "
        "affichée seulement s'il y a assez d'établissements.",
    ),
    (
        "taux-erreurs",
        "Taux d'erreurs",
        "demandes invalides, refus du relais et erreurs techniques, rapportés aux échanges.",
    ),
    (
        "certificat",
        "Certificat client",
        f"le certificat présenté au relais ; à renouveler avant "
        f"{CERTIFICATE_WARNING_DAYS} jours, en urgence avant {CERTIFICATE_CRITICAL_DAYS} jours.",
    ),
)


def glossary() -> str:
    items = "".join(
        tag("dt", escape(term), id=f"g-{anchor}") + tag("dd", escape(text))
        for anchor, term, text in GLOSSARY
    )
    return '<h2 id="glossaire">Glossaire</h2>' + tag("dl", items)


CLASS_GLOSSARY = {
    "ok": "positives",
    "refused": "autres",
    "invalid": "invalides",
    "rejected": "relais",
    "technical": "techniques",
    "abandoned": "abandons",
}


def stale_banner(generated_at: float, stale_since: float | None) -> str:
    if stale_since is None:
        return ""
    return tag(
        "p",
        f"Données non actualisées : la base des mesures (Prometheus) ne répond pas depuis le "
        f"{french.date_time(stale_since)} ; les chiffres ci-dessous datent du "
        f"{french.date_time(generated_at)}.",
        id="stale",
        class_="banner",
    )


def week_table(week: WeekComparison, base: str = "") -> str:
    def change(now: float | None, before: float | None) -> str:
        delta = WeekComparison.change(now, before)
        if delta is None:
            return "—"
        sign = "+" if delta > 0 else ("\u2212" if delta < 0 else "")
        return f"{sign}{french.number(abs(delta) * 100, 1)} points"

    rows = [head("", "7 derniers jours", "7 jours précédents", "Évolution")]
    t, p = week.this_week, week.previous_week
    rows.append(
        row(
            tag("th", "Échanges"),
            count_cell(t.total),
            count_cell(p.total),
            tag("td", ""),
            data_week="exchanges",
        )
    )
    for key, label, anchor, now, before in (
        ("success", "Taux de réponses positives", "positives", t.success_rate, p.success_rate),
        ("error", "Taux d'erreurs", "taux-erreurs", t.error_rate, p.error_rate),
    ):
        rows.append(
            row(
                tag("th", escape(label) + glossary_link(anchor, base)),
                tag("td", french.percent(now), class_="num", data_rate=num(now)),
                tag("td", french.percent(before), class_="num", data_rate=num(before)),
                tag("td", change(now, before), class_="num"),
                data_week=key,
            )
        )
    return tag("table", "".join(rows), id="week")


def message_html(title: str, message: str) -> bytes:
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
