"""SIM, CLC and DEL decisions: the rules of ``mutuelle.care`` applied with a sandbox's state.

Pure: parsed request, dataset and sandbox in, an answer out (CLC and DEL change the sandbox).
Order of the rules, the first that applies answers:

- SIM: IDB's rules on the same person, period and sector (01-06), then the amounts; 08 when
  the AMC has nothing to pay, else 00 with the statement.
- CLC: as SIM, and before the amounts: an earlier successful IDB of this establishment must
  cover the beneficiary, period and sector (07); no active engagement for the same stay
  reference (09). 00 records a new engagement and returns its number.
- DEL: unknown beneficiary (01), then the engagement's state (10, 11, 12) or 00.
"""

from __future__ import annotations

from dataclasses import dataclass

from mutuelle.care import CareOutcome, CareRequest, Statement, compute
from mutuelle.idb import CodedAnswer, IdbAnswer, IdbOutcome, IdbRequest, decide
from mutuelle.model import BeneficiaryKey, Dataset
from mutuelle.sandbox import DelOutcome, Identification, Sandbox
from roc.model import RocVersion

#: Any answer a ROC service gives: an enum member whose value is a ``ReturnCode``.
Outcome = IdbOutcome | CareOutcome | DelOutcome


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
    sandbox: Sandbox, amc_number: str, request: IdbRequest, answer: IdbAnswer
) -> None:
    """After an IDB: remember a successful one (00) for later CLCs of this establishment."""
    if answer.outcome is IdbOutcome.RIGHTS_OPEN:
        sandbox.identify(
            Identification(
                amc_number, request.beneficiary, request.start, request.end, request.sector
            )
        )


def simulate(
    request: CareRequest, amc_number: str, version: RocVersion, dataset: Dataset
) -> CareAnswer:
    """SIM: the estimate, no state involved."""
    rights = decide(request.rights_question, amc_number, version, dataset)
    if rights.outcome is not IdbOutcome.RIGHTS_OPEN:
        return CareAnswer(rights.outcome)
    person = dataset.beneficiary(amc_number, request.beneficiary)
    assert person is not None  # RIGHTS_OPEN found them
    statement = compute(request, dataset.contract_of(person).guarantee)
    if statement.total.amc == 0:
        return CareAnswer(CareOutcome.REFUSED)
    return CareAnswer(CareOutcome.ACCEPTED, statement)


def calculate(
    request: CareRequest,
    amc_number: str,
    version: RocVersion,
    dataset: Dataset,
    sandbox: Sandbox,
) -> CareAnswer:
    """CLC: SIM's rules plus the coherence with earlier calls; 00 records an engagement."""
    rights = decide(request.rights_question, amc_number, version, dataset)
    if rights.outcome is not IdbOutcome.RIGHTS_OPEN:
        return CareAnswer(rights.outcome)
    if not sandbox.identified(
        amc_number, request.beneficiary, request.start, request.end, request.sector
    ):
        return CareAnswer(CareOutcome.NO_PRIOR_IDB)
    if sandbox.active_engagement_for(amc_number, request.beneficiary, request.reference):
        return CareAnswer(CareOutcome.ENGAGEMENT_EXISTS)
    answer = simulate(request, amc_number, version, dataset)
    if answer.outcome is not CareOutcome.ACCEPTED or answer.statement is None:
        return answer
    engagement = sandbox.engage(
        amc_number, request.beneficiary, request.reference, answer.statement.total.amc
    )
    return CareAnswer(CareOutcome.ACCEPTED, answer.statement, engagement.number)


def cancel(request: DelRequest, amc_number: str, dataset: Dataset, sandbox: Sandbox) -> DelAnswer:
    """DEL: cancel the engagement if it is this beneficiary's and still cancellable."""
    person = dataset.beneficiary(amc_number, request.beneficiary)
    if person is None:
        return DelAnswer(IdbOutcome.UNKNOWN_BENEFICIARY)
    if request.member_number is not None and request.member_number != person.member_number:
        return DelAnswer(IdbOutcome.MEMBER_NUMBER_MISMATCH)
    outcome = sandbox.cancel(amc_number, request.beneficiary, request.engagement_number)
    number = request.engagement_number if outcome is DelOutcome.CANCELLED else None
    return DelAnswer(outcome, number)
