"""SIM and CLC rules: what the AMO, the AMC and the patient pay for the care described.

Pure: a parsed request, the beneficiary's cover, the dated tariff table and the history the
AMC already holds in, a statement out. Every rule, with its public source, is stated in
docs/roc-model.md ("Rules of the amounts"); in short, for each line:

- ``PJ`` (prix de journée, public-sector stays, per day): the ticket modérateur (TM) is
  computed on the daily tariff: the AMO pays ``TauxAMO`` % of it, the TM is the rest.
- ``GHS`` (ex-OQN stay) and ``ACT`` (act): the AMO pays ``TauxAMO`` % of the base, the TM is
  the rest. In an external visit (ACE) whose acts reach the heavy-act threshold in force, the
  flat participation in force *replaces* the TM: the AMO pays the base minus that amount,
  the amount is the patient's, paid by the AMC when the guarantee covers it.
- ``FJH`` (forfait journalier, per day): never paid by the AMO. On a day a TM is due, the
  forfait is imputed on it up to its amount (CSS L. 174-4): the line then charges only what
  the TM did not absorb. A PJ's TM absorbs the forfait of its own day; a GHS's TM (a whole
  stay) absorbs the forfait of every day, in order.
- ``CP`` (private room, per day): up to the guarantee's ceiling, within its yearly day limit
  (days already billed in the year, given by ``CareHistory``, count).
- ``ACC`` (companion, per day): up to the guarantee's ceiling.
- ``DEP`` (ex-OQN fee overrun): never paid by the AMO; the AMC pays up to its OPTAM or
  non-OPTAM percentage of the base, a responsible contract within the regulated caps.

Each day uses the guarantees in force that day, in priority order: the first pays its share,
the next top up what remains. On every line the AMC share never exceeds what the AMO leaves.
Amounts are integer euro cents, rounded half up to the cent per day (per line for the
others). Callers check conformance first (``mutuelle.conformance`` bounds the days).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType

from mutuelle.idb import CodedOutcome, IdbRequest, ReturnCode
from mutuelle.model import BeneficiaryKey, CareKind, Cover, Guarantee, Sector
from mutuelle.tariffs import TariffCode, TariffTable

_ONE_DAY = datetime.timedelta(days=1)


class LineCode(StrEnum):
    PJ = "PJ"  #: prix de journée: daily tariff of a public-sector stay (per day)
    GHS = "GHS"  #: ex-OQN clinic stay, base tariff
    ACT = "ACT"  #: act or consultation
    FJH = "FJH"  #: forfait journalier hospitalier (per day)
    CP = "CP"  #: private room (per day)
    ACC = "ACC"  #: companion's bed and meals (per day)
    DEP = "DEP"  #: fee overrun (ex-OQN clinics)


#: Lines whose AMO base is sent as ``BaseRemboursement``.
BASED_LINES = frozenset({LineCode.PJ, LineCode.GHS, LineCode.ACT, LineCode.DEP})
#: Lines counted in days: each unit is one day, from the line's DateDebut.
DAILY_LINES = frozenset({LineCode.PJ, LineCode.FJH, LineCode.CP, LineCode.ACC})
#: Lines bearing a ticket modérateur.
TM_LINES = frozenset({LineCode.PJ, LineCode.GHS, LineCode.ACT})


class Exemption(StrEnum):
    """Why the patient is exempt from the ticket modérateur (``Sejour/Exoneration``)."""

    ALD = "ALD"  #: affection de longue durée, care related to it
    MATERNITY = "MATERNITE"  #: assurance maternité
    WORK_ACCIDENT = "AT_MP"  #: accident du travail, maladie professionnelle

    @property
    def exempts_daily_charge(self) -> bool:
        """Maternity and work accidents are also exempt from the forfait journalier."""
        return self is not Exemption.ALD


class CareOutcome(CodedOutcome):
    """SIM and CLC answers of their own; IDB's refusals (01-06) apply to them too."""

    ACCEPTED = ReturnCode(
        "00",
        "Prise en charge acceptée",
        "The AMC pays its share; the statement shows base, AMO, AMC and patient per line.",
    )
    NO_PRIOR_IDB = ReturnCode(
        "07",
        "Aucune IDB préalable pour ce bénéficiaire et cette période",
        "CLC only: no successful IDB of this establishment covers this beneficiary, period "
        "and sector.",
    )
    REFUSED = ReturnCode(
        "08",
        "Prise en charge refusée : aucune part à la charge de l'AMC",
        "Nothing the guarantee covers remains after the AMO share: the AMC pays nothing.",
    )
    ENGAGEMENT_EXISTS = ReturnCode(
        "09",
        "Engagement déjà en cours pour ce séjour",
        "CLC only: an active engagement exists for this stay reference, made from a different "
        "request; the answer carries its number and amounts: carry on with it, or cancel it "
        "(DEL) and calculate again.",
    )
    OVERLAPPING = ReturnCode(
        "13",
        "Engagement en cours sur une période qui chevauche ce séjour",
        "CLC only: this beneficiary already has an active engagement for another stay whose "
        "days overlap this one (a stay may start on the day another ends).",
    )


@dataclass(frozen=True, slots=True)
class CareLine:
    """One ``Prestation`` of a SIM or CLC request."""

    number: int
    code: LineCode
    quantity: int
    unit_price_cents: int
    #: AMO base per unit, for PJ, GHS, ACT and DEP.
    base_cents: int | None = None
    #: First day the line covers (per-day lines) or day of the act; None: the stay's first.
    start: datetime.date | None = None
    #: DEP lines: whether the doctor is in the OPTAM scheme.
    optam: bool | None = None


@dataclass(frozen=True, slots=True)
class CareRequest:
    """What a ``DemandeSIM`` or ``DemandeCLC`` asks (routing aside)."""

    beneficiary: BeneficiaryKey
    member_number: str | None
    reference: str
    start: datetime.date
    end: datetime.date
    sector: Sector
    care_kind: CareKind
    amo_rate: int
    lines: tuple[CareLine, ...]
    exemption: Exemption | None = None

    def __repr__(self) -> str:
        return f"CareRequest(sector={self.sector.value}, lines={len(self.lines)})"

    @property
    def rights_question(self) -> IdbRequest:
        """The IDB question this request implies: same person, period, sector and care."""
        return IdbRequest(
            self.beneficiary, self.member_number, self.start, self.end, self.sector, self.care_kind
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def line_start(self, line: CareLine) -> datetime.date:
        return line.start or self.start


def request_fingerprint(request: CareRequest) -> str:
    """A digest of everything *request* asks but the member number: same stay, same care."""
    text = repr(astuple(request)[2:])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CareHistory:
    """What the AMC already holds for this beneficiary: private-room days billed per year."""

    private_room_days: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))


NO_HISTORY = CareHistory()


def private_room_days(request: CareRequest) -> dict[int, int]:
    """Private-room days *request* bills, per calendar year (what an engagement records)."""
    out: dict[int, int] = {}
    for line in request.lines:
        if line.code is LineCode.CP:
            first = request.line_start(line)
            for offset in range(line.quantity):
                year = (first + offset * _ONE_DAY).year
                out[year] = out.get(year, 0) + 1
    return out


@dataclass(frozen=True, slots=True)
class Amounts:
    """Charged, AMO share, AMC share, what the patient pays, and the AMO base, in cents.

    The base is the AMO's tariff base (PJ, GHS, ACT and DEP lines); 0 where the AMO has none.
    """

    charged: int
    amo: int
    amc: int
    patient: int
    base: int = 0

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.charged + other.charged,
            self.amo + other.amo,
            self.amc + other.amc,
            self.patient + other.patient,
            self.base + other.base,
        )


ZERO = Amounts(0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class StatementLine:
    number: int
    code: LineCode
    amounts: Amounts


@dataclass(frozen=True, slots=True)
class Statement:
    """The answer's ``Decompte``: one line per request line, and the total."""

    lines: tuple[StatementLine, ...]

    @property
    def total(self) -> Amounts:
        total = ZERO
        for line in self.lines:
            total = total + line.amounts
        return total


def percent(amount: int, rate: int) -> int:
    """*rate* % of *amount*, rounded half up to the cent."""
    return (amount * rate + 50) // 100


def _stacked(room: int, offers: list[int]) -> int:
    """What guarantees offering *offers* (in priority order) pay together within *room*."""
    paid = 0
    for offer in offers:
        paid += min(max(0, offer), room - paid)
    return max(0, paid)


def overrun_percent(
    guarantee: Guarantee, optam: bool, day: datetime.date, tariffs: TariffTable
) -> int:
    """The share of the base *guarantee* pays on a fee overrun, caps of responsible contracts
    included: non-OPTAM cover at most the ceiling in force, and at least the margin in force
    below the OPTAM cover (CSS R. 871-2)."""
    if optam:
        return guarantee.fee_overrun_optam_percent
    share = guarantee.fee_overrun_non_optam_percent
    if guarantee.responsible:
        ceiling = tariffs.value(TariffCode.NON_OPTAM_CEILING, day)
        margin = tariffs.value(TariffCode.OPTAM_MARGIN, day)
        if ceiling is not None:
            share = min(share, ceiling)
        if margin is not None:
            share = min(share, max(0, guarantee.fee_overrun_optam_percent - margin))
    return share


def flat_participation_plan(request: CareRequest, tariffs: TariffTable) -> dict[int, int] | None:
    """The flat participation of an external visit, by ACT line number, or None without one.

    The acts of one visit count together (one consultation); when their bases reach the
    threshold in force, the participation in force replaces the TM of every act and is taken
    on the largest acts first. Exempt patients pay none.
    """
    if request.care_kind is not CareKind.EXTERNAL or request.exemption is not None:
        return None
    acts = [
        line for line in request.lines if line.code is LineCode.ACT and line.base_cents is not None
    ]
    threshold = tariffs.value(TariffCode.HEAVY_ACT_THRESHOLD, request.start)
    amount = tariffs.value(TariffCode.FLAT_PARTICIPATION, request.start)
    total = sum((line.base_cents or 0) * line.quantity for line in acts)
    if threshold is None or amount is None or not acts or total < threshold:
        return None
    plan: dict[int, int] = {}
    remaining = amount
    for line in sorted(
        acts, key=lambda line: (-(line.base_cents or 0) * line.quantity, line.number)
    ):
        part = min(remaining, (line.base_cents or 0) * line.quantity)
        plan[line.number] = part
        remaining -= part
    return plan


@dataclass(slots=True)
class _Sum:
    charged: int = 0
    amo: int = 0
    amc: int = 0
    base: int = 0

    def add(self, charged: int, amo: int, amc: int, base: int) -> None:
        self.charged += charged
        self.amo += amo
        self.amc += amc
        self.base += base

    def amounts(self) -> Amounts:
        return Amounts(
            self.charged, self.amo, self.amc, self.charged - self.amo - self.amc, self.base
        )


def compute(
    request: CareRequest,
    cover: Cover,
    tariffs: TariffTable,
    history: CareHistory = NO_HISTORY,
) -> Statement:
    """The statement of *request* for a beneficiary with *cover* (see the module's rules)."""
    sums = {line.number: _Sum() for line in request.lines}
    flat = flat_participation_plan(request, tariffs)
    rate = request.amo_rate
    exempt_daily = request.exemption is not None and request.exemption.exempts_daily_charge
    stay_pool = 0  # TM of GHS lines: absorbs forfaits journaliers of any day, in order
    daily: dict[datetime.date, list[CareLine]] = {}
    for line in request.lines:
        total = sums[line.number]
        first = request.line_start(line)
        if line.code in DAILY_LINES:
            for offset in range(line.quantity):
                daily.setdefault(first + offset * _ONE_DAY, []).append(line)
            continue
        guarantees = cover.on(first)
        charged = line.unit_price_cents * line.quantity
        base = (line.base_cents or 0) * line.quantity
        if line.code is LineCode.DEP:
            optam = bool(line.optam)
            offers = [percent(base, overrun_percent(g, optam, first, tariffs)) for g in guarantees]
            total.add(charged, 0, _stacked(charged, offers), base)
        elif flat is not None and line.code is LineCode.ACT:
            part = flat.get(line.number, 0)
            amo = min(charged, base - part)
            offers = [part if g.covers_flat_participation else 0 for g in guarantees]
            total.add(charged, amo, _stacked(min(part, charged - amo), offers), base)
        else:  # GHS, ACT
            amo = min(charged, percent(base, rate))
            moderator = max(0, base - percent(base, rate))
            offers = [percent(moderator, g.ticket_moderateur_percent) for g in guarantees]
            total.add(charged, amo, _stacked(charged - amo, offers), base)
            if line.code is LineCode.GHS:
                stay_pool += moderator
    rooms = dict(history.private_room_days)
    for day in sorted(daily):
        guarantees = cover.on(day)
        lines = daily[day]
        day_pool = 0
        for line in lines:
            if line.code is not LineCode.PJ:
                continue
            price, base = line.unit_price_cents, line.base_cents or 0
            amo = min(price, percent(base, rate))
            moderator = max(0, base - percent(base, rate))
            offers = [percent(moderator, g.ticket_moderateur_percent) for g in guarantees]
            sums[line.number].add(price, amo, _stacked(price - amo, offers), base)
            day_pool += moderator
        for line in lines:
            price = line.unit_price_cents
            if line.code is LineCode.FJH:
                if exempt_daily:  # not the patient's: the AMO pays it (CSS L. 174-4)
                    sums[line.number].add(price, price, 0, 0)
                    continue
                imputed = min(price, day_pool + stay_pool)
                from_day = min(imputed, day_pool)
                day_pool -= from_day
                stay_pool -= imputed - from_day
                charged = price - imputed
                in_force = tariffs.daily_charge(request.sector, day) or 0
                offers = [
                    min(charged, in_force) if g.covers_daily_hospital_charge else 0
                    for g in guarantees
                ]
                sums[line.number].add(charged, 0, _stacked(charged, offers), 0)
            elif line.code is LineCode.CP:
                rooms[day.year] = rooms.get(day.year, 0) + 1
                ordinal = rooms[day.year]
                offers = [
                    min(price, g.private_room_ceiling_cents)
                    if g.private_room_days_per_year == 0 or ordinal <= g.private_room_days_per_year
                    else 0
                    for g in guarantees
                ]
                sums[line.number].add(price, 0, _stacked(price, offers), 0)
            elif line.code is LineCode.ACC:
                offers = [min(price, g.companion_ceiling_cents) for g in guarantees]
                sums[line.number].add(price, 0, _stacked(price, offers), 0)
    return Statement(
        tuple(
            StatementLine(line.number, line.code, sums[line.number].amounts())
            for line in request.lines
        )
    )


#: xs:decimal's lexical space: optional sign, digits, optional fraction (``+3500.``, ``.5``).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def cents(text: str) -> int:
    """Cents of an xs:decimal euro amount whose value has at most two decimals.

    Every lexical form the schemas accept is read (``+3500.00``, ``3500.000``, ``3500.``,
    ``.50``); a value with a third significant decimal, a negative value or another notation
    is refused, as the schemas refuse it.
    """
    stripped = text.strip()
    if not _DECIMAL.fullmatch(stripped):
        raise ValueError("not a decimal amount")
    try:
        value = Decimal(stripped) * 100
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError("not a decimal amount") from None
    if value < 0 or value != value.to_integral_value():
        raise ValueError("not an amount >= 0 with at most two decimals")
    return int(value)


def euros(amount: int) -> str:
    """A cents amount as the schemas' decimal ("1250" -> "12.50")."""
    return f"{amount // 100}.{amount % 100:02d}"
