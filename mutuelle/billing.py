"""Billing rules: a DRE-ES invoice for one engagement, its ARL, then its 578R or 908R.

Pure: the invoice, the engagement it names (or None), the dataset and the sandbox's time in,
a decision out; ``mutuelle.storage.ISandbox`` keeps what the decision says to keep. The model
is the project's own (docs/roc-model.md, "Billing"); in short:

- **ARL** (accusé de réception logique), answered at once to the DRE-ES: refused when the
  request breaks the schema (``30``), names no engagement of this beneficiary at this AMC
  (``31``), or reuses an invoice number this AMC already received from this establishment
  (``32``), or bills an engagement already billed (``33``); otherwise accepted (``00``)
  and the invoice is kept for its return.
- **Return**, decided when the invoice is accepted (from the engagement and the sandbox's
  date on that day), delivered ``RETURN_DELAY`` later in sandbox time (or at once after the
  admin call "produce returns now"):

  - 908R (rejection, a reason code and its French label), first that applies: the engagement
    was cancelled (``R01``); the beneficiary's rights ended before the stay's first day
    (``R02``); the invoice arrived more than ``BILLING_DEADLINE`` after the engagement was
    made (the CLC, sandbox time: ``R03``); nothing is payable: every line asks what the
    engagement does not hold (``R04``);
  - otherwise 578R (payment): per line, the engaged AMC share of the line with the same
    number (an engagement seeded without a statement: its total, line after line), at most
    what the line asks; the total never exceeds the engagement's AMC amount. A line paid
    less than asked says why (``E1`` more than engaged, ``E2`` line not engaged, ``E3``
    engagement total reached). Full payment when every line is paid what it asks.

- The engagement moves to BILLED on an accepted invoice (an active one only), then to PAID
  or REJECTED when its return is delivered; DEL on any of these answers ``12`` as on BILLED.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from mutuelle.care import CareRequest, LineCode, Statement
from mutuelle.engagements import SETTLED, Engagement, EngagementState
from mutuelle.idb import CodedAnswer, CodedOutcome, ReturnCode
from mutuelle.model import BeneficiaryKey, Dataset

#: An invoice must arrive within this many days after its engagement's CLC (the model's rule).
BILLING_DEADLINE = datetime.timedelta(days=90)
#: The AMC's return comes this long (sandbox time) after the invoice was accepted.
RETURN_DELAY = datetime.timedelta(days=2)


class ArlOutcome(CodedOutcome):
    """The ARL's codes: the invoice received and kept, or refused with the reason."""

    ACCEPTED = ReturnCode(
        "00",
        "Facture reçue et acceptée",
        "The invoice is kept; its return (578R or 908R) comes later from the returns service.",
    )
    SCHEMA = ReturnCode(
        "30",
        "Facture refusée : non conforme au format de facturation",
        "The DRE-ES breaks the billing schema or a rule of the format (a stay ending before "
        "it starts, a line number twice); the fields and rules are named (Anomalie).",
    )
    UNKNOWN_ENGAGEMENT = ReturnCode(
        "31",
        "Facture refusée : engagement inconnu",
        "No engagement of this number exists for this beneficiary at this AMC.",
    )
    DUPLICATE = ReturnCode(
        "32",
        "Facture refusée : numéro de facture déjà reçu",
        "This establishment already sent an invoice of this number to this AMC.",
    )
    ALREADY_BILLED = ReturnCode(
        "33",
        "Facture refusée : engagement déjà facturé",
        "An accepted invoice already bills this engagement; send a single invoice per stay.",
    )


class Rejection(CodedOutcome):
    """The 908R's reasons."""

    CANCELLED = ReturnCode(
        "R01", "Engagement annulé", "The engagement was cancelled (DEL) before it was billed."
    )
    RIGHTS_CLOSED = ReturnCode(
        "R02",
        "Droits du bénéficiaire clos avant le séjour",
        "The beneficiary's rights ended before the stay's first day.",
    )
    LATE = ReturnCode(
        "R03",
        "Facture reçue après le délai de facturation",
        f"The invoice arrived more than {BILLING_DEADLINE.days} days after the engagement "
        "was made (the CLC, sandbox time).",
    )
    NOTHING_PAYABLE = ReturnCode(
        "R04",
        "Aucune prestation facturée ne correspond à l'engagement",
        "No invoiced line matches a line the engagement holds an AMC share for.",
    )


class Shortfall(StrEnum):
    """Why a 578R line pays less than it asks (French labels in ``SHORTFALL_LABELS``)."""

    MORE_THAN_ENGAGED = "E1"
    NOT_ENGAGED = "E2"
    TOTAL_REACHED = "E3"


SHORTFALL_LABELS = {
    Shortfall.MORE_THAN_ENGAGED: "Montant demandé supérieur à la part AMC engagée",
    Shortfall.NOT_ENGAGED: "Prestation absente de l'engagement",
    Shortfall.TOTAL_REACHED: "Montant total de l'engagement atteint",
}


class ReturnKind(StrEnum):
    PAYMENT = "578R"
    REJECTION = "908R"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One invoiced line: the CLC line it bills (same number and code), and the AMC amount."""

    number: int
    code: LineCode
    amount_cents: int


@dataclass(frozen=True, slots=True)
class Invoice:
    """What a ``DemandeDRE`` sends: one invoice for one engagement."""

    invoice_number: str
    engagement_number: str
    beneficiary: BeneficiaryKey
    reference: str
    start: datetime.date
    end: datetime.date
    lines: tuple[InvoiceLine, ...]
    #: ``Beneficiaire/NumeroAdherent``, when sent.
    member_number: str | None = None

    def __repr__(self) -> str:
        return f"Invoice(invoice_number={self.invoice_number!r}, lines={len(self.lines)})"

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


@dataclass(frozen=True, slots=True)
class PaidLine:
    number: int
    code: LineCode
    asked_cents: int
    paid_cents: int
    shortfall: Shortfall | None = None

    @property
    def label(self) -> str:
        return "" if self.shortfall is None else SHORTFALL_LABELS[self.shortfall]


@dataclass(frozen=True, slots=True)
class BillingReturn:
    """A 578R or a 908R, as the hospital fetches it; no personal data (numbers and amounts)."""

    kind: ReturnKind
    amc_number: str
    invoice_number: str
    engagement_number: str
    #: Sandbox time (POSIX seconds) from which the return is delivered.
    due: float
    #: 578R: per line; empty for a 908R.
    lines: tuple[PaidLine, ...] = ()
    #: 908R: the reason.
    rejection: Rejection | None = None
    acknowledged: bool = False

    @property
    def paid_cents(self) -> int:
        return sum(line.paid_cents for line in self.lines)

    @property
    def asked_cents(self) -> int:
        return sum(line.asked_cents for line in self.lines)

    @property
    def full(self) -> bool:
        return self.kind is ReturnKind.PAYMENT and self.paid_cents == self.asked_cents

    @property
    def payment_reference(self) -> str:
        """A stable reference of the payment (the same invoice always gives the same)."""
        digest = hashlib.sha256(f"{self.amc_number}/{self.invoice_number}".encode()).hexdigest()
        return f"VIR-{self.amc_number}-{digest[:10].upper()}"

    @property
    def payment_date(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self.due, datetime.UTC).date()

    @property
    def engagement_state(self) -> EngagementState:
        """The state the engagement takes when this return is delivered."""
        if self.kind is ReturnKind.PAYMENT:
            return EngagementState.PAID
        if self.rejection is Rejection.CANCELLED:
            return EngagementState.CANCELLED
        return EngagementState.REJECTED


@dataclass(frozen=True, slots=True)
class ArlAnswer(CodedAnswer):
    """The ARL: the outcome, and when accepted the return decided (delivered later)."""

    outcome: ArlOutcome
    invoice_number: str = ""
    pending: BillingReturn | None = None


def receive(
    invoice: Invoice,
    amc_number: str,
    engagement: Engagement | None,
    duplicate: bool,
    dataset: Dataset,
    now: float,
) -> ArlAnswer:
    """The ARL answering *invoice* received at sandbox time *now*, with its future return.

    *engagement* is the sandbox's engagement of that number (None if there is none);
    *duplicate* whether this AMC already received this invoice number from the establishment.
    """
    if engagement is None or not engagement.is_of(amc_number, invoice.beneficiary):
        return ArlAnswer(ArlOutcome.UNKNOWN_ENGAGEMENT, invoice.invoice_number)
    if duplicate:
        return ArlAnswer(ArlOutcome.DUPLICATE, invoice.invoice_number)
    if engagement.state in SETTLED:
        return ArlAnswer(ArlOutcome.ALREADY_BILLED, invoice.invoice_number)
    due = now + RETURN_DELAY.total_seconds()
    rejection = rejection_of(invoice, amc_number, engagement, dataset, now)
    paid: tuple[PaidLine, ...] = ()
    if rejection is None:
        paid = pay(invoice, engagement)
        if sum(line.paid_cents for line in paid) == 0:
            rejection = Rejection.NOTHING_PAYABLE
    pending = BillingReturn(
        kind=ReturnKind.PAYMENT if rejection is None else ReturnKind.REJECTION,
        amc_number=amc_number,
        invoice_number=invoice.invoice_number,
        engagement_number=engagement.number,
        due=due,
        lines=paid if rejection is None else (),
        rejection=rejection,
    )
    return ArlAnswer(ArlOutcome.ACCEPTED, invoice.invoice_number, pending)


def rejection_of(
    invoice: Invoice, amc_number: str, engagement: Engagement, dataset: Dataset, now: float
) -> Rejection | None:
    """The 908R reason for *invoice*, received at sandbox time *now*, or None.

    The deadline counts from the engagement's CLC (``created``, sandbox time; a seeded one's
    is resolved by the sandbox from its age at reset).
    """
    if engagement.state is EngagementState.CANCELLED:
        return Rejection.CANCELLED
    person = dataset.beneficiary(amc_number, invoice.beneficiary)
    first_day = engagement.start or invoice.start
    if person is None or all(
        period.end is not None and period.end < first_day for period in person.rights
    ):
        return Rejection.RIGHTS_CLOSED
    made = now if engagement.created is None else engagement.created
    if now - made > BILLING_DEADLINE.total_seconds():
        return Rejection.LATE
    return None


def pay(invoice: Invoice, engagement: Engagement) -> tuple[PaidLine, ...]:
    """What the AMC pays on each line of *invoice*, within *engagement*'s AMC shares."""
    engaged: dict[int, tuple[LineCode, int]] | None = None
    if engagement.statement is not None:
        engaged = {
            line.number: (line.code, line.amounts.amc) for line in engagement.statement.lines
        }
    room = engagement.amc_cents
    out: list[PaidLine] = []
    for line in invoice.lines:
        shortfall: Shortfall | None = None
        if engaged is None:
            allowed = line.amount_cents
        else:
            held = engaged.get(line.number)
            if held is None or held[0] is not line.code or held[1] == 0:
                allowed, shortfall = 0, Shortfall.NOT_ENGAGED
            elif line.amount_cents > held[1]:
                allowed, shortfall = held[1], Shortfall.MORE_THAN_ENGAGED
            else:
                allowed = line.amount_cents
        if allowed > room:
            allowed, shortfall = room, shortfall or Shortfall.TOTAL_REACHED
        room -= allowed
        out.append(PaidLine(line.number, line.code, line.amount_cents, allowed, shortfall))
    return tuple(out)


def invoice_for(
    request: CareRequest,
    statement: Statement,
    engagement_number: str,
    invoice_number: str,
    more_cents: int = 0,
) -> Invoice:
    """The invoice a hospital sends for the stay of CLC *request* answered by *statement*:
    one line per statement line the AMC pays, asking its share (the first *more_cents* more:
    a partial payment's invoice)."""
    lines: list[InvoiceLine] = []
    for line in statement.lines:
        if line.amounts.amc > 0:
            extra = more_cents if not lines else 0
            lines.append(InvoiceLine(line.number, line.code, line.amounts.amc + extra))
    return Invoice(
        invoice_number,
        engagement_number,
        request.beneficiary,
        request.reference,
        request.start,
        request.end,
        tuple(lines),
        request.member_number,
    )


def billed(engagement: Engagement) -> EngagementState:
    """The state an engagement takes when its invoice is accepted (cancelled ones stay so)."""
    if engagement.state is EngagementState.ACTIVE:
        return EngagementState.BILLED
    return engagement.state
