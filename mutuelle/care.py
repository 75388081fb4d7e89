"""SIM and CLC rules: what the AMO, the AMC and the patient pay for the care described.

Pure: a parsed request, the beneficiary's guarantee in, a statement out. The public rules
(ROC.md section 4) the engine applies, line by line:

- ``GHS`` (stay) and ``ACT`` (external act): the AMO pays ``TauxAMO`` % of the base; the AMC
  pays its guarantee's share of the *ticket modérateur* (base minus AMO share). When the
  request carries a ``PFA`` line (expensive act), the flat participation replaces the ticket
  modérateur: the AMO pays the whole base.
- ``FJH`` (forfait journalier hospitalier): 20 EUR a day in MCO and SMR, 15 EUR in PSY, none in
  HAD; never paid by the AMO; paid by the AMC when the guarantee says so.
- ``PFA`` (flat participation, 24 EUR): never paid by the AMO; paid by the AMC per guarantee.
- ``CP`` (private room) and ``ACC`` (companion): never paid by the AMO; the AMC pays up to the
  guarantee's ceiling per day.
- ``DEP`` (ex-OQN fee overruns): never paid by the AMO; the AMC pays up to the guarantee's
  percentage of the base.
- On every line the AMC share never exceeds what the AMO leaves; the patient pays the rest.

Amounts are integer euro cents.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import StrEnum

from mutuelle.idb import CodedOutcome, IdbRequest, ReturnCode
from mutuelle.model import BeneficiaryKey, CareKind, Guarantee, Sector

#: Forfait journalier hospitalier per day, in cents; HAD has none.
DAILY_HOSPITAL_CHARGE_CENTS = {
    Sector.MCO: 2000,
    Sector.SMR: 2000,
    Sector.OQN: 2000,
    Sector.PSY: 1500,
    Sector.HAD: 0,
}
#: Flat participation on expensive acts, in cents.
FLAT_PARTICIPATION_CENTS = 2400


class LineCode(StrEnum):
    GHS = "GHS"  #: stay, base tariff
    ACT = "ACT"  #: external act or consultation
    FJH = "FJH"  #: forfait journalier hospitalier (per day)
    PFA = "PFA"  #: flat participation on an expensive act
    CP = "CP"  #: private room (per day)
    ACC = "ACC"  #: companion's bed and meals (per day)
    DEP = "DEP"  #: fee overrun (ex-OQN clinics)


#: Lines whose AMO base is sent as ``BaseRemboursement``.
BASED_LINES = frozenset({LineCode.GHS, LineCode.ACT, LineCode.DEP})


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
        "CLC only: an active engagement exists for this stay reference; cancel it (DEL) first.",
    )


@dataclass(frozen=True, slots=True)
class CareLine:
    """One ``Prestation`` of a SIM or CLC request."""

    number: int
    code: LineCode
    quantity: int
    unit_price_cents: int
    #: AMO base per unit, for GHS, ACT and DEP.
    base_cents: int | None = None


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

    def __repr__(self) -> str:
        return f"CareRequest(sector={self.sector.value}, lines={len(self.lines)})"

    @property
    def rights_question(self) -> IdbRequest:
        """The IDB question this request implies: same person, period, sector and care."""
        return IdbRequest(
            self.beneficiary, self.member_number, self.start, self.end, self.sector, self.care_kind
        )


@dataclass(frozen=True, slots=True)
class Amounts:
    """Charged, AMO share, AMC share, what the patient pays, and the AMO base, in cents.

    The base is the AMO's tariff base (GHS, ACT and DEP lines); 0 where the AMO has none.
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


def _percent(amount: int, percent: int) -> int:
    """*percent* % of *amount*, rounded half up to the cent."""
    return (amount * percent + 50) // 100


def line_amounts(
    line: CareLine, guarantee: Guarantee, sector: Sector, amo_rate: int, flat_participation: bool
) -> Amounts:
    """The shares of one line (see the module's docstring for the rules)."""
    charged = line.unit_price_cents * line.quantity
    base = (line.base_cents if line.base_cents is not None else line.unit_price_cents) * (
        line.quantity
    )
    amo = 0
    amc = 0
    if line.code in (LineCode.GHS, LineCode.ACT):
        rate = 100 if flat_participation else amo_rate
        amo = min(charged, _percent(base, rate))
        amc = _percent(base - _percent(base, rate), guarantee.ticket_moderateur_percent)
    elif line.code is LineCode.FJH:
        if guarantee.covers_daily_hospital_charge:
            amc = min(line.unit_price_cents, DAILY_HOSPITAL_CHARGE_CENTS[sector]) * line.quantity
    elif line.code is LineCode.PFA:
        if guarantee.covers_flat_participation:
            amc = min(line.unit_price_cents, FLAT_PARTICIPATION_CENTS) * line.quantity
    elif line.code is LineCode.CP:
        amc = min(line.unit_price_cents, guarantee.private_room_ceiling_cents) * line.quantity
    elif line.code is LineCode.ACC:
        amc = min(line.unit_price_cents, guarantee.companion_ceiling_cents) * line.quantity
    elif line.code is LineCode.DEP:
        amc = min(charged, _percent(base, guarantee.fee_overrun_percent_of_base))
    amc = max(0, min(amc, charged - amo))
    amo_base = base if line.code in BASED_LINES else 0
    return Amounts(charged, amo, amc, charged - amo - amc, amo_base)


def compute(request: CareRequest, guarantee: Guarantee) -> Statement:
    """The statement of *request* under *guarantee*."""
    flat = any(line.code is LineCode.PFA for line in request.lines)
    return Statement(
        tuple(
            StatementLine(
                line.number,
                line.code,
                line_amounts(line, guarantee, request.sector, request.amo_rate, flat),
            )
            for line in request.lines
        )
    )


def cents(text: str) -> int:
    """Cents of a decimal euro amount with at most two decimals ("12.5" -> 1250)."""
    whole, _, fraction = text.strip().partition(".")
    if len(fraction) > 2 or not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError("not an amount with at most two decimals")
    return int(whole) * 100 + int((fraction + "00")[:2])


def euros(amount: int) -> str:
    """A cents amount as the schemas' decimal ("1250" -> "12.50")."""
    return f"{amount // 100}.{amount % 100:02d}"
