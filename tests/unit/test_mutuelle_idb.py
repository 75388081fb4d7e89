"""IDB rules on a small hand-made dataset: each rule, and the order in which they apply."""

from __future__ import annotations

import datetime

import pytest

from mutuelle.idb import IdbOutcome, IdbRequest, decide
from mutuelle.model import (
    Amc,
    Beneficiary,
    BeneficiaryKey,
    CareKind,
    Contract,
    ContractPeriod,
    Dataset,
    Guarantee,
    RightsPeriod,
    Sector,
)
from roc.identifiers import make_nir
from roc.model import RocVersion

D = datetime.date
ALL = frozenset(Sector)
TP_AMC = "990000101"
NO_TP_AMC = "990000505"
GUARANTEE = Guarantee("BASE", "Base", 100, True, True, 4000, 0, 2000, 100, 100, True)
PARENT_NIR = make_nir("1800599999001")
PARENT_BIRTH = D(1980, 5, 14)
STAY_START = D(2026, 3, 2)
STAY_END = D(2026, 3, 6)
OTHER_NIR = make_nir("2910199999002")


def person(
    nir: str = PARENT_NIR,
    birth: datetime.date = PARENT_BIRTH,
    rank: int = 1,
    amc: str = TP_AMC,
    rights: tuple[RightsPeriod, ...] = (RightsPeriod(D(2020, 1, 1), None, ALL),),
) -> Beneficiary:
    return Beneficiary(
        nir, "FICTIF", "Alpha", birth, rank, "ALP0000001", amc, (ContractPeriod("C1"),), rights
    )


def dataset(*people: Beneficiary) -> Dataset:
    contracts = (Contract("C1", GUARANTEE),)
    return Dataset(
        (Amc(TP_AMC, "Alpha", True, contracts), Amc(NO_TP_AMC, "Epsilon", False, contracts)),
        people,
    )


def ask(
    data: Dataset,
    start: datetime.date = STAY_START,
    end: datetime.date = STAY_END,
    sector: Sector = Sector.MCO,
    version: RocVersion = RocVersion.V1,
    amc: str = TP_AMC,
    member_number: str | None = None,
    key: BeneficiaryKey | None = None,
) -> IdbOutcome:
    request = IdbRequest(
        key or BeneficiaryKey(PARENT_NIR, D(1980, 5, 14), 1),
        member_number,
        start,
        end,
        sector,
        CareKind.HOSPITALISATION,
    )
    return decide(request, amc, version, data).outcome


def test_open_rights_answer_names_amc_member_contract_period_and_sectors() -> None:
    rights = (
        RightsPeriod(D(2020, 1, 1), D(2030, 12, 31), frozenset({Sector.MCO, Sector.SMR})),
        RightsPeriod(D(2020, 1, 1), None, frozenset({Sector.HAD})),
    )
    request = IdbRequest(
        BeneficiaryKey(PARENT_NIR, D(1980, 5, 14), 1),
        "ALP0000001",
        D(2026, 3, 2),
        D(2026, 3, 6),
        Sector.MCO,
        CareKind.HOSPITALISATION,
    )
    answer = decide(request, TP_AMC, RocVersion.V1, dataset(person(rights=rights)))
    assert (answer.code, answer.label) == ("00", "Droits ouverts")
    assert answer.rights is not None
    assert answer.rights.amc_number == TP_AMC
    assert answer.rights.member_number == "ALP0000001"
    assert answer.rights.contract_id == "C1"
    assert (answer.rights.start, answer.rights.end) == (D(2020, 1, 1), D(2030, 12, 31))
    assert answer.rights.sectors == (Sector.MCO, Sector.HAD, Sector.SMR)


def test_yearly_renewal_covers_a_stay_over_new_year() -> None:
    rights = (
        RightsPeriod(D(2025, 1, 1), D(2025, 12, 31), ALL),
        RightsPeriod(D(2026, 1, 1), None, ALL),
    )
    data = dataset(person(rights=rights))
    assert ask(data, D(2025, 12, 29), D(2026, 1, 3)) is IdbOutcome.RIGHTS_OPEN


def test_a_one_day_gap_between_periods_leaves_the_stay_partly_uncovered() -> None:
    rights = (
        RightsPeriod(D(2025, 1, 1), D(2025, 12, 30), ALL),
        RightsPeriod(D(2026, 1, 1), None, ALL),
    )
    data = dataset(person(rights=rights))
    assert ask(data, D(2025, 12, 29), D(2026, 1, 3)) is IdbOutcome.RIGHTS_PARTIAL


@pytest.mark.parametrize(
    ("rights", "expected"),
    [
        ((RightsPeriod(D(2018, 1, 1), D(2024, 12, 31), ALL),), IdbOutcome.RIGHTS_CLOSED),
        ((RightsPeriod(D(2026, 4, 1), None, ALL),), IdbOutcome.RIGHTS_CLOSED),
        ((RightsPeriod(D(2021, 1, 1), D(2026, 3, 4), ALL),), IdbOutcome.RIGHTS_PARTIAL),
        ((RightsPeriod(D(2026, 3, 4), None, ALL),), IdbOutcome.RIGHTS_PARTIAL),
        ((), IdbOutcome.RIGHTS_CLOSED),
    ],
    ids=["ended-before", "starts-after", "ends-during", "starts-during", "no-rights"],
)
def test_period_not_fully_covered_answers_02(
    rights: tuple[RightsPeriod, ...], expected: IdbOutcome
) -> None:
    outcome = ask(dataset(person(rights=rights)))
    assert outcome is expected
    assert outcome.code == "02"


def test_rights_open_for_other_sectors_answer_sector_not_covered() -> None:
    data = dataset(person(rights=(RightsPeriod(D(2020, 1, 1), None, frozenset({Sector.MCO})),)))
    assert ask(data, sector=Sector.PSY, version=RocVersion.V2) is IdbOutcome.SECTOR_NOT_COVERED


def test_v2_sector_in_a_v1_request_answers_06_before_looking_anyone_up() -> None:
    assert ask(dataset(), sector=Sector.HAD) is IdbOutcome.SECTOR_NOT_IN_VERSION
    assert ask(dataset(person()), sector=Sector.MCO, version=RocVersion.V2).code == "00"


def test_beneficiary_is_looked_up_within_the_routed_amc_only() -> None:
    data = dataset(person(amc=NO_TP_AMC))
    assert ask(data, amc=TP_AMC) is IdbOutcome.UNKNOWN_BENEFICIARY


def test_birth_rank_tells_twins_apart() -> None:
    twins = D(2015, 6, 1)
    data = dataset(person(), person(birth=twins, rank=1), person(birth=twins, rank=2))
    for rank, expected in ((1, "00"), (2, "00"), (3, "01")):
        key = BeneficiaryKey(PARENT_NIR, twins, rank)
        assert ask(data, key=key).code == expected


def test_birth_date_is_part_of_the_identity() -> None:
    key = BeneficiaryKey(PARENT_NIR, D(1980, 5, 15), 1)
    assert ask(dataset(person()), key=key) is IdbOutcome.UNKNOWN_BENEFICIARY


def test_member_number_is_optional_but_checked_when_sent() -> None:
    data = dataset(person())
    assert ask(data, member_number=None) is IdbOutcome.RIGHTS_OPEN
    assert ask(data, member_number="ALP0000001") is IdbOutcome.RIGHTS_OPEN
    assert ask(data, member_number="ALP0000002") is IdbOutcome.MEMBER_NUMBER_MISMATCH


def test_amc_without_third_party_payment_answers_04_for_known_people_only() -> None:
    data = dataset(person(amc=NO_TP_AMC))
    assert ask(data, amc=NO_TP_AMC) is IdbOutcome.NO_THIRD_PARTY_PAYMENT
    stranger = BeneficiaryKey(OTHER_NIR, D(1991, 1, 29), 1)
    assert ask(data, amc=NO_TP_AMC, key=stranger) is IdbOutcome.UNKNOWN_BENEFICIARY
    assert ask(data, amc=NO_TP_AMC, member_number="X1") is IdbOutcome.MEMBER_NUMBER_MISMATCH


def test_every_outcome_has_a_two_digit_code_and_a_label() -> None:
    for outcome in IdbOutcome:
        assert len(outcome.code) == 2 and outcome.code.isdigit()
        assert outcome.label


def test_period_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="DateFin"):
        IdbRequest(
            BeneficiaryKey(PARENT_NIR, D(1980, 5, 14), 1),
            None,
            D(2026, 3, 6),
            D(2026, 3, 2),
            Sector.MCO,
            CareKind.HOSPITALISATION,
        )


def test_requests_and_beneficiaries_do_not_show_personal_data_in_their_repr() -> None:
    request = IdbRequest(
        BeneficiaryKey(PARENT_NIR, D(1980, 5, 14), 1),
        None,
        D(2026, 3, 2),
        D(2026, 3, 6),
        Sector.MCO,
        CareKind.HOSPITALISATION,
    )
    for text in (repr(request), repr(person())):
        assert PARENT_NIR not in text
        assert "FICTIF" not in text
        assert "1980" not in text


def test_dataset_refuses_a_beneficiary_of_an_unknown_contract() -> None:
    stray = Beneficiary(
        PARENT_NIR, "FICTIF", "Alpha", D(1980, 5, 14), 1, "A1", TP_AMC, (ContractPeriod("C9"),), ()
    )
    with pytest.raises(ValueError, match="no contract C9"):
        dataset(stray)
