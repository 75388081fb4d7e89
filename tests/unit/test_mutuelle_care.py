"""SIM and CLC amounts: the rules of docs/roc-model.md, day by day, in cents."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from mutuelle.care import (
    Amounts,
    CareHistory,
    CareLine,
    CareRequest,
    Exemption,
    LineCode,
    Statement,
    cents,
    compute,
    euros,
    private_room_days,
    request_fingerprint,
)
from mutuelle.datafiles import shipped_tariffs_text
from mutuelle.model import BeneficiaryKey, CareKind, Cover, CoverPeriod, Guarantee, Sector
from mutuelle.tariffs import parse_tariffs
from roc.identifiers import make_nir

TARIFFS = parse_tariffs(shipped_tariffs_text())
D = datetime.date
KEY = BeneficiaryKey(make_nir("1800599999001"), D(1980, 5, 1), 1)
START, END = D(2026, 3, 2), D(2026, 3, 6)


def guarantee(**changes: object) -> Guarantee:
    values: dict[str, object] = {
        "code": "G",
        "label": "G",
        "ticket_moderateur_percent": 100,
        "covers_daily_hospital_charge": True,
        "covers_flat_participation": True,
        "private_room_ceiling_cents": 7000,
        "private_room_days_per_year": 0,
        "companion_ceiling_cents": 4000,
        "fee_overrun_optam_percent": 200,
        "fee_overrun_non_optam_percent": 200,
        "responsible": True,
    }
    values.update(changes)
    return Guarantee(**values)  # type: ignore[arg-type]


FULL = guarantee()
NOTHING = guarantee(
    ticket_moderateur_percent=0,
    covers_daily_hospital_charge=False,
    covers_flat_participation=False,
    private_room_ceiling_cents=0,
    companion_ceiling_cents=0,
    fee_overrun_optam_percent=0,
    fee_overrun_non_optam_percent=0,
)


def stay(
    *lines: CareLine,
    start: datetime.date = START,
    end: datetime.date = END,
    sector: Sector = Sector.MCO,
    kind: CareKind = CareKind.HOSPITALISATION,
    rate: int = 80,
    exemption: Exemption | None = None,
) -> CareRequest:
    return CareRequest(KEY, None, "SEJ-1", start, end, sector, kind, rate, lines, exemption)


def statement(
    request: CareRequest, g: Guarantee | Cover = FULL, history: CareHistory | None = None
) -> Statement:
    cover = g if isinstance(g, Cover) else Cover.single(g)
    return compute(request, cover, TARIFFS, history or CareHistory())


def line(request: CareRequest, number: int, g: Guarantee | Cover = FULL) -> Amounts:
    found = {item.number: item.amounts for item in statement(request, g).lines}
    return found[number]


PJ = CareLine(1, LineCode.PJ, 4, 120000, 120000)
FJ = CareLine(2, LineCode.FJH, 5, 2000)


def test_public_stay_ticket_moderateur_is_on_the_daily_tariff_times_the_days() -> None:
    request = stay(PJ)
    assert line(request, 1) == Amounts(480000, 384000, 96000, 0, base=480000)
    half = guarantee(ticket_moderateur_percent=50)
    assert line(request, 1, half) == Amounts(480000, 384000, 48000, 48000, base=480000)


def test_the_forfait_journalier_is_imputed_on_the_ticket_moderateur_of_its_day() -> None:
    request = stay(PJ, FJ)
    # Four nights' ticket modérateur (240.00 each) absorb their day's forfait; the discharge
    # day's forfait is charged on its own.
    assert line(request, 2) == Amounts(2000, 0, 2000, 0)
    assert statement(request).total == Amounts(482000, 384000, 98000, 0, base=480000)
    uncovered = guarantee(covers_daily_hospital_charge=False)
    assert line(request, 2, uncovered) == Amounts(2000, 0, 0, 2000)


def test_a_ticket_moderateur_below_the_forfait_is_imputed_on_the_forfait() -> None:
    request = stay(CareLine(1, LineCode.PJ, 4, 9000, 9000), FJ)  # TM 18.00 < 20.00
    assert line(request, 2) == Amounts(4 * 200 + 2000, 0, 2800, 0)
    total = statement(request, NOTHING).total
    assert total.patient == 5 * 2000  # the patient side pays the forfait each day, not both


def test_a_ghs_ticket_moderateur_absorbs_the_forfaits_of_the_whole_stay() -> None:
    request = stay(
        CareLine(1, LineCode.GHS, 1, 30000, 30000),  # TM 60.00
        FJ,
        sector=Sector.OQN,
    )
    assert line(request, 2) == Amounts(4000, 0, 4000, 0)  # 60.00 absorbed three forfaits


def test_exempt_patients_have_no_ticket_moderateur_so_nothing_absorbs_the_forfait() -> None:
    request = stay(PJ, FJ, rate=100, exemption=Exemption.ALD)
    assert line(request, 1) == Amounts(480000, 480000, 0, 0, base=480000)
    assert line(request, 2) == Amounts(10000, 0, 10000, 0)


def test_maternity_and_work_accidents_leave_the_forfait_to_the_amo() -> None:
    for exemption in (Exemption.MATERNITY, Exemption.WORK_ACCIDENT):
        request = stay(PJ, FJ, rate=100, exemption=exemption)
        assert line(request, 2) == Amounts(10000, 10000, 0, 0)


def test_the_forfait_journalier_in_force_caps_what_the_amc_pays_each_day() -> None:
    request = stay(
        CareLine(1, LineCode.FJH, 5, 2500),
        start=D(2017, 12, 30),
        end=D(2018, 1, 3),
        rate=100,
        exemption=Exemption.ALD,
    )
    # 30 and 31 December 2017 at 18.00 in force, 1-3 January 2018 at 20.00.
    assert line(request, 1) == Amounts(12500, 0, 2 * 1800 + 3 * 2000, 2 * 700 + 3 * 500)


def act(price: int, number: int = 1) -> CareLine:
    return CareLine(number, LineCode.ACT, 1, price, price)


def visit(*lines: CareLine, day: datetime.date = START, **more: object) -> CareRequest:
    return stay(*lines, start=day, end=day, kind=CareKind.EXTERNAL, rate=70, **more)  # type: ignore[arg-type]


def test_the_flat_participation_replaces_the_ticket_moderateur_of_a_heavy_act() -> None:
    assert statement(visit(act(15000))).total == Amounts(15000, 12600, 2400, 0, base=15000)
    uncovered = guarantee(covers_flat_participation=False)
    assert statement(visit(act(15000)), uncovered).total == Amounts(15000, 12600, 0, 2400, 15000)


def test_the_heavy_act_threshold_and_amount_are_the_ones_in_force() -> None:
    assert statement(visit(act(11999))).total.amo == 8399  # 70 %, ticket modérateur
    assert statement(visit(act(12000))).total.amo == 12000 - 2400
    assert statement(visit(act(15000), day=D(2018, 12, 31))).total.amo == 15000 - 1800
    # Before 24 February 2011 the threshold was 91.00.
    assert statement(visit(act(10000), day=D(2011, 2, 23))).total.amo == 10000 - 1800
    assert statement(visit(act(10000), day=D(2011, 2, 24))).total.amo == 7000


def test_acts_of_one_visit_count_together_and_the_participation_is_taken_once() -> None:
    result = statement(visit(act(8000, 1), act(5000, 2)))
    lines = {item.number: item.amounts for item in result.lines}
    assert lines[1] == Amounts(8000, 5600, 2400, 0, base=8000)
    assert lines[2] == Amounts(5000, 5000, 0, 0, base=5000)


def test_exempt_patients_pay_no_flat_participation() -> None:
    request = replace(visit(act(15000), exemption=Exemption.ALD), amo_rate=100)
    assert statement(request).total == Amounts(15000, 15000, 0, 0, base=15000)


def test_private_room_cover_stops_at_the_yearly_day_limit() -> None:
    room = CareLine(3, LineCode.CP, 4, 5000)
    limited = guarantee(private_room_ceiling_cents=4000, private_room_days_per_year=30)
    request = stay(PJ, room)
    assert line(request, 3, limited) == Amounts(20000, 0, 16000, 4000)
    used = statement(request, limited, CareHistory({2026: 28})).lines[1].amounts
    assert used == Amounts(20000, 0, 8000, 12000)  # two nights left this year
    assert private_room_days(request) == {2026: 4}


def test_private_room_days_are_counted_per_calendar_year() -> None:
    room = CareLine(3, LineCode.CP, 4, 5000)
    limited = guarantee(private_room_ceiling_cents=5000, private_room_days_per_year=30)
    request = stay(room, start=D(2025, 12, 30), end=D(2026, 1, 3))
    assert private_room_days(request) == {2025: 2, 2026: 2}
    # 2025 is full; the two nights of 2026 are covered.
    covered = statement(request, limited, CareHistory({2025: 30})).total.amc
    assert covered == 2 * 5000


def test_each_day_uses_the_contracts_in_force_that_day() -> None:
    room = CareLine(3, LineCode.CP, 4, 6500)
    cover = Cover(
        (
            CoverPeriod("A", NOTHING, None, D(2026, 3, 3)),
            CoverPeriod("B", FULL, D(2026, 3, 4), None),
        )
    )
    assert line(stay(room), 3, cover) == Amounts(26000, 0, 13000, 13000)  # 4 and 5 March


def test_a_second_contract_tops_up_what_the_first_leaves() -> None:
    base_contract = guarantee(private_room_ceiling_cents=2000, ticket_moderateur_percent=50)
    top_up = guarantee(private_room_ceiling_cents=3000, ticket_moderateur_percent=100)
    cover = Cover((CoverPeriod("A", base_contract), CoverPeriod("B", top_up)))
    request = stay(PJ, CareLine(3, LineCode.CP, 4, 6500))
    assert line(request, 3, cover) == Amounts(26000, 0, 4 * 5000, 4 * 1500)
    assert line(request, 1, cover).amc == 96000  # 50 % + the rest, within the TM


def overrun(optam: bool) -> CareRequest:
    return stay(
        CareLine(1, LineCode.GHS, 1, 150000, 150000),
        CareLine(2, LineCode.DEP, 1, 45000, 30000, optam=optam),
        sector=Sector.OQN,
    )


def test_optam_overruns_are_covered_up_to_the_contract_percentage() -> None:
    g = guarantee(fee_overrun_optam_percent=100, fee_overrun_non_optam_percent=100)
    assert line(overrun(True), 2, g) == Amounts(45000, 0, 30000, 15000, base=30000)


def test_responsible_contracts_cap_non_optam_overruns() -> None:
    # At least 20 points below OPTAM cover: 100 % -> 80 %.
    g = guarantee(fee_overrun_optam_percent=100, fee_overrun_non_optam_percent=100)
    assert line(overrun(False), 2, g).amc == 24000
    # At most 100 % of the base since 2017, whatever the contract says.
    generous = guarantee(fee_overrun_optam_percent=250, fee_overrun_non_optam_percent=200)
    assert line(overrun(False), 2, generous).amc == 30000
    in_2016 = replace(overrun(False), start=D(2016, 6, 1), end=D(2016, 6, 5))
    assert line(in_2016, 2, generous).amc == 37500  # 125 % then
    free = guarantee(
        fee_overrun_optam_percent=250, fee_overrun_non_optam_percent=200, responsible=False
    )
    assert line(overrun(False), 2, free).amc == 45000  # not responsible: no cap


def test_extras_are_covered_up_to_the_daily_ceiling() -> None:
    request = stay(CareLine(3, LineCode.CP, 4, 9500), CareLine(4, LineCode.ACC, 2, 4500))
    assert line(request, 3) == Amounts(38000, 0, 28000, 10000)
    assert line(request, 4) == Amounts(9000, 0, 8000, 1000)


def test_the_amc_never_pays_more_than_the_amo_leaves() -> None:
    cheap = stay(CareLine(1, LineCode.ACT, 1, 2000, 2500))  # priced below its base
    amounts = line(cheap, 1)
    assert amounts.amo + amounts.amc <= amounts.charged and amounts.patient >= 0


def test_statement_keeps_one_line_per_request_line_in_order() -> None:
    request = stay(PJ, FJ, CareLine(3, LineCode.CP, 4, 9500))
    result = statement(request)
    assert [item.number for item in result.lines] == [1, 2, 3]
    assert result.total == Amounts(520000, 384000, 126000, 10000, base=480000)
    assert KEY.nir not in repr(request)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 1200),
        ("12.5", 1250),
        ("0.05", 5),
        ("3500.00", 350000),
        ("+3500.00", 350000),
        ("3500.000", 350000),
        ("3500.", 350000),
        (".50", 50),
        (" 7.10 ", 710),
        ("-0.00", 0),
    ],
)
def test_every_decimal_notation_the_schemas_accept_is_read(text: str, value: int) -> None:
    assert cents(text) == value
    assert cents(euros(value)) == value


@pytest.mark.parametrize(
    "text", ["1.234", "-1", "1e3", "abc", "", "1_000", "NaN", "Infinity", "٣", "+", "."]
)
def test_what_the_schemas_refuse_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        cents(text)


def test_a_retry_is_recognised_whatever_the_member_number() -> None:
    request = stay(PJ, FJ)
    same = replace(request, member_number="ALP0000001")
    other = stay(PJ)
    assert request_fingerprint(request) == request_fingerprint(same)
    assert request_fingerprint(request) != request_fingerprint(other)


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
        D(2026, 3, 2),
        D(2026, 3, 6),
        Sector.OQN,
        CareKind.HOSPITALISATION,
        100,
        (
            CareLine(1, LineCode.GHS, 1, 150000, 150000),
            CareLine(2, LineCode.FJH, 2, 2000, None, D(2026, 3, 5)),
            CareLine(3, LineCode.DEP, 1, 45050, 30000, optam=False),
        ),
        Exemption.ALD,
    )
    for service in ("SIM", "CLC"):
        assert read_care_request(care_request_element(request, service), service) == request
        result = statement(request)
        answer = CareAnswer(CareOutcome.ACCEPTED, result, "ENG-1" if service == "CLC" else None)
        code, label, read, number = read_care_answer(care_answer_element(answer, service), service)
        assert (code, label, read, number) == ("00", answer.label, result, answer.engagement_number)
