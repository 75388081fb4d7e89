"""SIM and CLC amounts: the public rules of ROC.md section 4, line by line, in cents."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutuelle.care import (
    BASED_LINES,
    Amounts,
    CareLine,
    CareRequest,
    LineCode,
    cents,
    compute,
    euros,
    line_amounts,
)
from mutuelle.model import BeneficiaryKey, CareKind, Guarantee, Sector
from roc.identifiers import make_nir

FULL = Guarantee("INTEGRAL", "Intégral", 100, True, True, 7000, 4000, 200)
BASIC = Guarantee("ESSENTIEL", "Essentiel", 100, True, False, 0, 0, 0)
HALF = Guarantee("DEMI", "Demi", 50, False, False, 3000, 2000, 50)
KEY = BeneficiaryKey(make_nir("1800599999001"), datetime.date(1980, 5, 1), 1)


def shares(
    line: CareLine,
    guarantee: Guarantee = FULL,
    sector: Sector = Sector.MCO,
    rate: int = 80,
    flat: bool = False,
) -> Amounts:
    return line_amounts(line, guarantee, sector, rate, flat)


def test_stay_amo_pays_its_rate_and_amc_the_ticket_moderateur() -> None:
    line = CareLine(1, LineCode.GHS, 1, 350000, 350000)
    assert shares(line) == Amounts(350000, 280000, 70000, 0, base=350000)
    assert shares(line, HALF) == Amounts(350000, 280000, 35000, 35000, base=350000)
    assert shares(line, rate=100) == Amounts(350000, 350000, 0, 0, base=350000)


def test_only_stays_acts_and_overruns_have_an_amo_base() -> None:
    assert shares(CareLine(1, LineCode.ACT, 2, 3000, 2500)).base == 5000
    assert shares(CareLine(1, LineCode.CP, 4, 6500)).base == 0


def test_daily_hospital_charge_by_sector_never_paid_by_the_amo() -> None:
    assert shares(CareLine(1, LineCode.FJH, 5, 2000)) == Amounts(10000, 0, 10000, 0)
    psy = shares(CareLine(1, LineCode.FJH, 5, 2000), sector=Sector.PSY)
    assert psy == Amounts(10000, 0, 7500, 2500)  # 15 EUR a day in psychiatry
    assert shares(CareLine(1, LineCode.FJH, 5, 2000), sector=Sector.HAD).amc == 0
    assert shares(CareLine(1, LineCode.FJH, 5, 2000), HALF).amc == 0  # not covered


def test_flat_participation_replaces_the_ticket_moderateur() -> None:
    act = CareLine(1, LineCode.ACT, 1, 15000, 15000)
    assert shares(act, flat=True) == Amounts(15000, 15000, 0, 0, base=15000)
    assert shares(CareLine(2, LineCode.PFA, 1, 2400)) == Amounts(2400, 0, 2400, 0)
    assert shares(CareLine(2, LineCode.PFA, 1, 2400), BASIC) == Amounts(2400, 0, 0, 2400)


def test_extras_are_covered_up_to_the_daily_ceiling() -> None:
    assert shares(CareLine(1, LineCode.CP, 4, 6500)) == Amounts(26000, 0, 26000, 0)
    assert shares(CareLine(1, LineCode.CP, 4, 9500)) == Amounts(38000, 0, 28000, 10000)
    assert shares(CareLine(1, LineCode.CP, 4, 9500), BASIC).amc == 0
    assert shares(CareLine(1, LineCode.ACC, 2, 4500), HALF) == Amounts(9000, 0, 4000, 5000)


def test_fee_overruns_are_covered_up_to_a_percentage_of_the_base() -> None:
    overrun = CareLine(1, LineCode.DEP, 1, 45000, 30000)
    assert shares(overrun, HALF, Sector.OQN) == Amounts(45000, 0, 15000, 30000, base=30000)
    assert shares(overrun, FULL, Sector.OQN) == Amounts(
        45000, 0, 45000, 0, base=30000
    )  # 200 % caps at charged


def test_the_amc_never_pays_more_than_the_amo_leaves() -> None:
    # A price below the base: the AMO share already covers most of it.
    line = CareLine(1, LineCode.ACT, 1, 2000, 2500)
    amounts = shares(line)
    assert amounts.amo + amounts.amc <= amounts.charged
    assert amounts.patient >= 0


def test_statement_sums_its_lines() -> None:
    request = CareRequest(
        KEY,
        None,
        "SEJ-1",
        datetime.date(2026, 3, 2),
        datetime.date(2026, 3, 6),
        Sector.MCO,
        CareKind.HOSPITALISATION,
        80,
        (
            CareLine(1, LineCode.GHS, 1, 350000, 350000),
            CareLine(2, LineCode.FJH, 5, 2000),
            CareLine(3, LineCode.CP, 4, 9500),
        ),
    )
    statement = compute(request, FULL)
    assert [line.number for line in statement.lines] == [1, 2, 3]
    assert statement.total == Amounts(398000, 280000, 108000, 10000, base=350000)
    assert "NIR" not in repr(request) and KEY.nir not in repr(request)


@pytest.mark.parametrize(
    ("text", "value"), [("12", 1200), ("12.5", 1250), ("0.05", 5), ("3500.00", 350000)]
)
def test_amounts_are_exact_cents(text: str, value: int) -> None:
    assert cents(text) == value
    assert cents(euros(value)) == value


@pytest.mark.parametrize("text", ["1.234", "-1", "1e3", "abc", ""])
def test_amounts_with_more_than_two_decimals_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        cents(text)


@given(
    code=st.sampled_from(list(LineCode)),
    quantity=st.integers(1, 30),
    price=st.integers(0, 500_000),
    base=st.integers(0, 500_000),
    rate=st.integers(0, 100),
    sector=st.sampled_from(list(Sector)),
    flat=st.booleans(),
    guarantee=st.builds(
        Guarantee,
        code=st.just("G"),
        label=st.just("G"),
        ticket_moderateur_percent=st.integers(0, 100),
        covers_daily_hospital_charge=st.booleans(),
        covers_flat_participation=st.booleans(),
        private_room_ceiling_cents=st.integers(0, 20_000),
        companion_ceiling_cents=st.integers(0, 20_000),
        fee_overrun_percent_of_base=st.integers(0, 500),
    ),
)
def test_shares_always_add_up_and_the_amc_never_exceeds_what_the_amo_leaves(
    code: LineCode,
    quantity: int,
    price: int,
    base: int,
    rate: int,
    sector: Sector,
    flat: bool,
    guarantee: Guarantee,
) -> None:
    line = CareLine(1, code, quantity, price, base if code in BASED_LINES else None)
    amounts = line_amounts(line, guarantee, sector, rate, flat)
    assert amounts.charged == price * quantity
    assert min(amounts.amo, amounts.amc, amounts.patient) >= 0
    assert amounts.amo + amounts.amc + amounts.patient == amounts.charged
    assert amounts.amc <= amounts.charged - amounts.amo


def test_care_requests_and_answers_survive_the_wire() -> None:
    from mutuelle.care import CareOutcome
    from mutuelle.care_codec import (
        care_answer_element,
        care_request_element,
        read_care_answer,
        read_care_request,
    )
    from mutuelle.decisions import CareAnswer

    request = CareRequest(
        KEY,
        "ALP0000001",
        "SEJ-1",
        datetime.date(2026, 3, 2),
        datetime.date(2026, 3, 6),
        Sector.OQN,
        CareKind.HOSPITALISATION,
        80,
        (CareLine(1, LineCode.GHS, 1, 150000, 150000), CareLine(2, LineCode.DEP, 1, 45050, 30000)),
    )
    for service in ("SIM", "CLC"):
        assert read_care_request(care_request_element(request, service), service) == request
        statement = compute(request, FULL)
        answer = CareAnswer(CareOutcome.ACCEPTED, statement, "ENG-1" if service == "CLC" else None)
        code, label, read, number = read_care_answer(care_answer_element(answer, service), service)
        assert (code, label, read, number) == (
            "00",
            answer.label,
            statement,
            answer.engagement_number,
        )
