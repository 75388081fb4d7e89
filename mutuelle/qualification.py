"""The qualification suite an establishment plays before production, and its progress.

A suite is a named subset of the catalogue, chosen by the establishment's sectors: ROC V1 when
they are MCO only, V2 as soon as another sector (PSY, HAD, SMR, OQN) is in them. For each
sector it holds one case per service the catalogue has in that version (IDB, SIM, CLC, DEL,
and billing DRE), an OK one when there is one; for the first sector, also one IDB refusal and a
signed IDB (a valid WS-Security signature). Every step is played at the first fictitious AMC
(990000101), through the relay (``through_relay``), except billing: DRE-ES is not relayed, the
establishment sends invoices straight to Mutuelle ANS as it will to the AMC.

Progress is computed from the sandbox's journal, never declared. A journal entry is an attempt
at a step when it is about the step's case (``JournalEntry.case`` when it played it, else
``JournalEntry.aimed``: the cases of the beneficiary it named, refused or not) at the step's
AMC and service; the **last** attempt decides: passed when it played the case (its answer the
expected one), conforming, through the relay when the step needs it, and for the signature
step with a valid signature; failed otherwise, with the reason and what to fix, in French.

Pure logic, no I/O: ``mutuelle.admin`` serves it, ``python -m mutuelle.qualification`` prints it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mutuelle.catalogue import Case, Catalogue
from mutuelle.examples import case_request
from mutuelle.sandbox import JournalEntry
from roc.model import RocVersion, Service

__all__ = [
    "SECTORS",
    "Progress",
    "Step",
    "StepProgress",
    "Suite",
    "UnknownSector",
    "progress",
    "step_request",
    "suite_for",
]

#: Sectors in the order suites list them (the relay's registration uses the same names).
SECTORS = ("MCO", "PSY", "HAD", "SMR", "OQN")
#: The fictitious AMC every step is played at.
QUALIFICATION_AMC = "990000101"
#: Signature states of the journal (``JournalEntry.signature``).
SIGNATURE_VALID = "VALIDE"
#: Most non-conforming exchanges that played no step listed with the progress.
UNMATCHED_SHOWN = 20

_SERVICES = (Service.IDB, Service.SIM, Service.CLC, Service.DEL, Service.DRE)
_TITLES = {
    Service.IDB: "Identification des droits du bénéficiaire (IDB)",
    Service.SIM: "Simulation de la prise en charge (SIM)",
    Service.CLC: "Calcul et engagement de la prise en charge (CLC)",
    Service.DEL: "Annulation d'un engagement (DEL)",
    Service.DRE: "Facturation directe à l'AMC (DRE-ES)",
}
#: Where the catalogue has several cases for a step, the one the suite plays.
_PREFERRED = (
    "IDB_OK_MCO_DROITS_OUVERTS",
    "IDB_OK_MCO_DROITS_OUVERTS_V2",
    "SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE",
    "SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE_V2",
    "CLC_OK_MCO_ENGAGEMENT",
    "CLC_OK_MCO_ENGAGEMENT_V2",
    "DEL_OK_MCO_ANNULATION",
    "DRE_OK_MCO_PAIEMENT_INTEGRAL",
    "IDB_KO_MCO_BENEFICIAIRE_INCONNU",
)


class UnknownSector(ValueError):
    """A sector no suite knows; the message is French (the establishment reads it)."""


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    title: str
    service: Service
    roc_version: RocVersion
    sector: str
    case: str
    amc: str
    expected_code: str
    expected_label: str
    through_relay: bool
    signed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "service": self.service.value,
            "roc_version": self.roc_version.value,
            "sector": self.sector,
            "case": self.case,
            "amc": self.amc,
            "expected_code": self.expected_code,
            "expected_label": self.expected_label,
            "through_relay": self.through_relay,
            "signed": self.signed,
        }


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    sectors: tuple[str, ...]
    roc_version: RocVersion
    steps: tuple[Step, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "sectors": list(self.sectors),
            "roc_version": self.roc_version.value,
            "steps": [s.as_dict() for s in self.steps],
        }


def parse_sectors(text: str | Iterable[str]) -> tuple[str, ...]:
    """Sectors from ``MCO,PSY`` (or a list), in the suites' order; ``UnknownSector`` else."""
    given = [s.strip().upper() for s in (text.split(",") if isinstance(text, str) else text)]
    given = [s for s in given if s]
    if not given:
        raise UnknownSector("aucun secteur donné : MCO, PSY, HAD, SMR ou OQN")
    unknown = [s for s in given if s not in SECTORS]
    if unknown:
        raise UnknownSector(
            f"secteur inconnu : {', '.join(unknown)} (secteurs : {', '.join(SECTORS)})"
        )
    return tuple(s for s in SECTORS if s in given)


def _pick(cases: Sequence[Case]) -> Case | None:
    """The case a step plays among *cases*: the preferred one, else the first by name."""
    by_name = {c.name: c for c in cases}
    for name in _PREFERRED:
        if name in by_name:
            return by_name[name]
    return min(cases, key=lambda c: c.name) if cases else None


def _step(case: Case, step_id: str, title: str, signed: bool = False) -> Step:
    return Step(
        id=step_id,
        title=title,
        service=case.service,
        roc_version=case.version,
        sector=case.sector.value,
        case=case.name,
        amc=case.amc_number,
        expected_code=case.expected_code,
        expected_label=case.expected_label,
        through_relay=case.service is not Service.DRE,
        signed=signed,
    )


def suite_for(sectors: str | Iterable[str], catalogue: Catalogue) -> Suite:
    """The qualification suite of an establishment of *sectors*."""
    chosen = parse_sectors(sectors)
    version = RocVersion.V1 if chosen == ("MCO",) else RocVersion.V2
    plain = [
        c
        for c in catalogue
        if c.amc_number == QUALIFICATION_AMC and c.version is version and not c.spec.full_stay
    ]
    steps: list[Step] = []
    refusal_made = False
    for sector in chosen:
        of_sector = [c for c in plain if c.sector.value == sector]
        for service in _SERVICES:
            offered = [c for c in of_sector if c.service is service]
            case = _pick([c for c in offered if "_KO_" not in c.name]) or _pick(offered)
            if case is None:
                continue
            label = f"{_TITLES[service]} — {sector}"
            steps.append(_step(case, f"{service.value}_{sector}", label))
            if service is Service.IDB and not any(s.signed for s in steps):
                title = f"Requête signée (WS-Security, signature valide) — {sector}"
                steps.append(_step(case, f"SIGNATURE_{sector}", title, signed=True))
        # One expected refusal per suite: an IDB refusal of the first sector that has one at
        # this version (V2 has none in MCO, HAD or OQN: MCO-PSY and MCO-SMR get theirs).
        refusals = [c for c in of_sector if c.service is Service.IDB and "_KO_" in c.name]
        if not refusal_made and refusals:
            case = _pick(refusals)
            assert case is not None
            title = f"{_TITLES[Service.IDB]} — {sector}, refus attendu"
            # Right after the sector's IDB steps (rights open, then signed when it has them).
            at = 1 + max(
                i for i, s in enumerate(steps) if s.sector == sector and s.service is Service.IDB
            )
            steps.insert(at, _step(case, f"IDB_{sector}_REFUS", title))
            refusal_made = True
    name = f"qualification-{version.value}-{'-'.join(chosen)}"
    return Suite(name, chosen, version, tuple(steps))


def standard_suites(catalogue: Catalogue) -> list[Suite]:
    """The suites of the usual profiles: MCO alone (V1), and each other sector with MCO (V2)."""
    return [suite_for(["MCO"], catalogue)] + [
        suite_for(["MCO", sector], catalogue) for sector in SECTORS[1:]
    ]


# Progress


@dataclass(frozen=True, slots=True)
class StepProgress:
    step: Step
    status: str  # passed | failed | not_played
    attempts: int = 0
    played_at: float | None = None
    exchange_id: str = ""
    reason: str | None = None
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.step.as_dict() | {
            "status": self.status,
            "attempts": self.attempts,
            "played_at": _iso(self.played_at),
            "exchange_id": self.exchange_id or None,
            "reason": self.reason,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Unmatched:
    time: float
    service: str
    exchange_id: str
    reason: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": _iso(self.time),
            "service": self.service,
            "exchange_id": self.exchange_id or None,
            "reason": self.reason,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    sandbox: str
    suite: Suite
    steps: tuple[StepProgress, ...]
    unmatched: tuple[Unmatched, ...] = field(default=())

    @property
    def qualified(self) -> bool:
        return all(s.status == "passed" for s in self.steps)

    def counts(self) -> dict[str, int]:
        found = {"passed": 0, "failed": 0, "not_played": 0}
        for s in self.steps:
            found[s.status] += 1
        return found | {"total": len(self.steps)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "sandbox": self.sandbox,
            "sectors": list(self.suite.sectors),
            "roc_version": self.suite.roc_version.value,
            "suite": self.suite.name,
            "qualified": self.qualified,
            "counts": self.counts(),
            "steps": [s.as_dict() for s in self.steps],
            "unmatched": [u.as_dict() for u in self.unmatched],
        }


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")


def _is_attempt(step: Step, entry: JournalEntry) -> bool:
    return (
        entry.service == step.service.value
        and entry.amc == step.amc
        and (entry.case == step.case or step.case in entry.aimed)
    )


def _violations_text(entry: JournalEntry) -> str:
    shown = [f"{v.field} [{v.rule}] {v.reason}" for v in entry.violations[:3]]
    more = len(entry.violations) - len(shown)
    return " ; ".join(shown) + (f" (et {more} autre(s))" if more > 0 else "")


def _judge(step: Step, entry: JournalEntry) -> tuple[str | None, str | None]:
    """(reason, fix) of a failed attempt, in French; (None, None) when it passed."""
    catalogue_ref = f"docs/catalogue.md, cas {step.case}"
    if entry.technical_fault:
        return (
            f"une faute technique ({entry.technical_fault}) a été jouée à la place de la réponse",
            "désactiver la faute technique du bac à sable (DELETE /__admin/sandboxes/<FINESS>/"
            "fault) puis rejouer l'étape",
        )
    if step.through_relay and not entry.via_relay:
        return (
            "l'échange n'est pas passé par le RPN ROC (envoyé directement à Mutuelle ANS)",
            "envoyer la requête à l'adresse du RPN ROC avec le certificat de l'établissement",
        )
    if step.signed:
        if not entry.signature:
            return (
                "la signature n'est pas vérifiée dans ce bac à sable (politique « off »)",
                "demander la vérification des signatures (politique report ou require : PUT "
                "/__admin/sandboxes/<FINESS>/signature) puis rejouer l'étape signée",
            )
        if entry.signature != SIGNATURE_VALID:
            return (
                f"signature refusée : règle {entry.signature}",
                "signer le Body et le bloc de routage avec le certificat de l'établissement "
                "(WS-Security, docs/roc-model.md), sans modifier le message après signature",
            )
    if entry.violations:
        return (
            f"requête non conforme : {_violations_text(entry)}",
            f"corriger les champs nommés selon leur règle ; la requête attendue : {catalogue_ref}",
        )
    if entry.case != step.case:
        got = entry.outcome or f"HTTP {entry.http_status}"
        return (
            f"réponse {got} au lieu de {step.expected_code} ({step.expected_label}) : la requête "
            "n'est pas celle du cas (bénéficiaire, période, secteur ou état du bac à sable)",
            f"envoyer la requête du cas telle que le catalogue la décrit ({catalogue_ref}) ; si "
            "le cas a déjà été joué (une annulation, une facture), réinitialiser le bac à sable "
            "(POST /__admin/sandboxes/<FINESS>/reset) et rejouer la suite",
        )
    return None, None


def _fix_of_rules(entry: JournalEntry) -> str:
    rules = sorted({v.rule for v in entry.violations})
    fields = sorted({v.field for v in entry.violations})
    return (
        f"corriger {', '.join(fields[:3])} (règle(s) {', '.join(rules[:3])}) : docs/catalogue.md "
        "et docs/roc-model.md décrivent chaque règle"
    )


def progress(
    sandbox: str, suite: Suite, journal: Sequence[JournalEntry], since: float | None = None
) -> Progress:
    """Where *sandbox* stands in *suite*, from its *journal* (oldest first); entries before
    *since* (unix seconds) are ignored."""
    entries = [e for e in journal if since is None or e.time >= since]
    found: list[StepProgress] = []
    claimed: set[int] = set()
    for step in suite.steps:
        attempts = [e for e in entries if _is_attempt(step, e)]
        claimed.update(e.sequence for e in attempts)
        if not attempts:
            found.append(StepProgress(step, "not_played"))
            continue
        last = attempts[-1]
        reason, fix = _judge(step, last)
        found.append(
            StepProgress(
                step,
                "passed" if reason is None else "failed",
                len(attempts),
                last.time,
                last.exchange_id,
                reason,
                fix,
            )
        )
    unmatched = [
        Unmatched(e.time, e.service, e.exchange_id, _violations_text(e), _fix_of_rules(e))
        for e in reversed(entries)
        if e.violations and e.sequence not in claimed
    ][:UNMATCHED_SHOWN]
    return Progress(sandbox, suite, tuple(found), tuple(unmatched))


def step_request(
    step: Step, catalogue: Catalogue, legal: str, site: str, exchange_id: str
) -> bytes:
    """The request playing *step* from sender (*legal*, *site*) (unsigned: sign the signature
    step's, e.g. with ``roc.signature.sign``)."""
    case = catalogue.get(step.amc, step.case)
    if case is None:
        raise ValueError(f"case {step.case} is not in the catalogue at AMC {step.amc}")
    return case_request(case, exchange_id, sender=(legal, site))


if __name__ == "__main__":  # ``python -m mutuelle.qualification``: the command lives apart
    from mutuelle.qualification_cli import main

    raise SystemExit(main())
