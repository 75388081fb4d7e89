"""SIM, CLC and DEL decisions: the rules of ``mutuelle.care`` applied with a sandbox's state.

Pure: parsed request, dataset and sandbox in, an answer out (CLC and DEL change the sandbox).
Order of the rules, the first that applies answers:

- SIM: IDB's rules on the same person, period and sector (01-06), then the amounts (with the
  private-room days earlier engagements billed); 08 when the AMC has nothing to pay, else 00
  with the statement.
- CLC: as SIM, and before the amounts: an earlier successful IDB of this establishment must
  cover the beneficiary, period and sector (07); an active engagement for the same stay
  reference answers again: 00 with it when the request is the same (a retry after a lost
  answer), 09 with it otherwise; an active engagement for another stay overlapping this one
  refuses it (13). 00 records a new engagement and returns its number.
- DEL: unknown beneficiary (01), then the engagement's state (10, 11, 12) or 00.
- DRE (billing, ``mutuelle.billing``): the ARL from the engagement the invoice names; an
  accepted invoice keeps its return (578R or 908R, decided now, delivered later) and bills an
  active engagement. Returns: acknowledge those named, list those due; a delivered return
  moves its engagement to paid or rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from mutuelle import billing
from mutuelle.billing import ArlAnswer, ArlOutcome, BillingReturn, Invoice
from mutuelle.care import (
    NO_HISTORY,
    CareHistory,
    CareOutcome,
    CareRequest,
    Statement,
    compute,
    private_room_days,
    request_fingerprint,
)
from mutuelle.engagements import Engagement
from mutuelle.idb import CodedAnswer, IdbAnswer, IdbOutcome, IdbRequest, decide
from mutuelle.model import BeneficiaryKey, Dataset
from mutuelle.sandbox import DelOutcome, Identification
from mutuelle.storage import ISandbox
from mutuelle.tariffs import TariffTable
from roc.model import RocVersion

#: Any answer a ROC service gives: an enum member whose value is a ``ReturnCode``.
Outcome = IdbOutcome | CareOutcome | DelOutcome | ArlOutcome


@dataclass(frozen=True, slots=True)
class CareAnswer(CodedAnswer):
    """A SIM or CLC answer: the outcome, and on 00 the statement (and CLC's engagement)."""

    outcome: IdbOutcome | CareOutcome
    statement: Statement | None = None
    engagement_number: str | None = None


@dataclass(frozen=True, slots=True)
class DelRequest:
    """What a ``DemandeDEL`` asks: cancel this beneficiary's engagement, for this reason."""

    beneficiary: BeneficiaryKey
    member_number: str | None
    engagement_number: str
    reason: str

    def __repr__(self) -> str:
        return f"DelRequest(engagement_number={self.engagement_number!r})"


@dataclass(frozen=True, slots=True)
class DelAnswer(CodedAnswer):
    outcome: IdbOutcome | DelOutcome
    engagement_number: str | None = None


def record_identification(
    sandbox: ISandbox, amc_number: str, request: IdbRequest, answer: IdbAnswer
) -> None:
    """After an IDB: remember a successful one (00) for later CLCs of this establishment."""
    if answer.outcome is IdbOutcome.RIGHTS_OPEN:
        sandbox.identify(
            Identification(
                amc_number, request.beneficiary, request.start, request.end, request.sector
            )
        )


def simulate(
    request: CareRequest,
    amc_number: str,
    version: RocVersion,
    dataset: Dataset,
    tariffs: TariffTable,
    history: CareHistory = NO_HISTORY,
) -> CareAnswer:
    """SIM: the estimate; nothing is recorded."""
    rights = decide(request.rights_question, amc_number, version, dataset)
    if rights.outcome is not IdbOutcome.RIGHTS_OPEN:
        return CareAnswer(rights.outcome)
    person = dataset.beneficiary(amc_number, request.beneficiary)
    assert person is not None  # RIGHTS_OPEN found them
    statement = compute(request, dataset.cover_of(person), tariffs, history)
    if statement.total.amc == 0:
        return CareAnswer(CareOutcome.REFUSED)
    return CareAnswer(CareOutcome.ACCEPTED, statement)


def simulate_in(
    request: CareRequest,
    amc_number: str,
    version: RocVersion,
    dataset: Dataset,
    tariffs: TariffTable,
    sandbox: ISandbox,
) -> CareAnswer:
    """SIM in a sandbox: the same estimate CLC would make there (same history), unrecorded."""
    history = sandbox.history(amc_number, request.beneficiary, request.reference)
    return simulate(request, amc_number, version, dataset, tariffs, history)


def calculate(
    request: CareRequest,
    amc_number: str,
    version: RocVersion,
    dataset: Dataset,
    tariffs: TariffTable,
    sandbox: ISandbox,
) -> CareAnswer:
    """CLC: SIM's rules plus the coherence with earlier calls; 00 records an engagement."""
    rights = decide(request.rights_question, amc_number, version, dataset)
    if rights.outcome is not IdbOutcome.RIGHTS_OPEN:
        return CareAnswer(rights.outcome)
    key = request.beneficiary
    if not sandbox.identified(amc_number, key, request.start, request.end, request.sector):
        return CareAnswer(CareOutcome.NO_PRIOR_IDB)
    fingerprint = request_fingerprint(request)
    existing = sandbox.active_engagement_for(amc_number, key, request.reference)
    if existing is not None:
        same = existing.fingerprint == fingerprint and existing.statement is not None
        outcome = CareOutcome.ACCEPTED if same else CareOutcome.ENGAGEMENT_EXISTS
        if existing.statement is None:  # an admin-seeded record: no amounts to give back
            return CareAnswer(outcome)
        return CareAnswer(outcome, existing.statement, existing.number)
    if sandbox.overlapping_engagement(
        amc_number, key, request.reference, request.start, request.end, request.care_kind
    ):
        return CareAnswer(CareOutcome.OVERLAPPING)
    answer = simulate_in(request, amc_number, version, dataset, tariffs, sandbox)
    if answer.outcome is not CareOutcome.ACCEPTED or answer.statement is None:
        return answer
    engagement = sandbox.engage(engagement_record(request, amc_number, answer.statement))
    return CareAnswer(CareOutcome.ACCEPTED, answer.statement, engagement.number)


def engagement_record(
    request: CareRequest, amc_number: str, statement: Statement, number: str = ""
) -> Engagement:
    """The engagement a CLC of *request* answering *statement* makes (number set on record)."""
    return Engagement(
        number=number,
        amc_number=amc_number,
        beneficiary=request.beneficiary,
        reference=request.reference,
        amc_cents=statement.total.amc,
        created=None,
        start=request.start,
        end=request.end,
        care_kind=request.care_kind,
        statement=statement,
        fingerprint=request_fingerprint(request),
        private_room_days=tuple(sorted(private_room_days(request).items())),
    )


def cancel(request: DelRequest, amc_number: str, dataset: Dataset, sandbox: ISandbox) -> DelAnswer:
    """DEL: cancel the engagement if it is this beneficiary's and still cancellable."""
    person = dataset.beneficiary(amc_number, request.beneficiary)
    if person is None:
        return DelAnswer(IdbOutcome.UNKNOWN_BENEFICIARY)
    if request.member_number is not None and request.member_number != person.member_number:
        return DelAnswer(IdbOutcome.MEMBER_NUMBER_MISMATCH)
    outcome = sandbox.cancel(amc_number, request.beneficiary, request.engagement_number)
    number = request.engagement_number if outcome is DelOutcome.CANCELLED else None
    return DelAnswer(outcome, number)


def invoice(request: Invoice, amc_number: str, dataset: Dataset, sandbox: ISandbox) -> ArlAnswer:
    """DRE-ES: the ARL; an accepted invoice keeps its return and bills its engagement."""
    engagement = sandbox.engagement(request.engagement_number)
    duplicate = sandbox.invoice_received(amc_number, request.invoice_number)
    answer = billing.receive(request, amc_number, engagement, duplicate, dataset, sandbox.now())
    if answer.pending is not None and engagement is not None:
        sandbox.keep_return(answer.pending)
        sandbox.set_engagement_state(engagement.number, billing.billed(engagement))
    return answer


def deliver_returns(
    acknowledged: tuple[str, ...], amc_number: str, sandbox: ISandbox
) -> tuple[int, list[BillingReturn]]:
    """DemandeRetours: acknowledge *acknowledged*, then this AMC's returns due (oldest first);
    each delivered return moves its engagement to the state it says."""
    count = sum(
        1 for number in dict.fromkeys(acknowledged) if sandbox.acknowledge(amc_number, number)
    )
    due = sandbox.returns_due(amc_number)
    for billing_return in due:
        sandbox.set_engagement_state(
            billing_return.engagement_number, billing_return.engagement_state
        )
    return count, due
