"""Properties of the rules engine over random stays, contracts and dates, and one truth for the
format: every value the schema accepts, the engine reads, with the schema's meaning; what is
not even a value of the type (``1e3``, ``٣``), the engine refuses too. Ranges (totalDigits,
maxInclusive...) are the schema's alone: requests are read after validation."""

from __future__ import annotations

import copy
import datetime
import re
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from mutuelle import testing
from mutuelle.care import (
    DAILY_LINES,
    NO_HISTORY,
    Amounts,
    CareHistory,
    CareLine,
    CareOutcome,
    CareRequest,
    Exemption,
    LineCode,
    Statement,
    compute,
    percent,
)
from mutuelle.care_codec import care_request_element, read_care_request
from mutuelle.codec import RequestInvalid
from mutuelle.decisions import calculate, simulate_in
from mutuelle.model import (
    Amc,
    Beneficiary,
    BeneficiaryKey,
    CareKind,
    Contract,
    ContractPeriod,
    Cover,
    CoverPeriod,
    Dataset,
    Guarantee,
    RightsPeriod,
    Sector,
)
from mutuelle.sandbox import Identification, Sandbox, SandboxSeed
from mutuelle.schemas import validation_error
from mutuelle.tariffs import TariffCode
from piano.testing import StrictClock
from roc.identifiers import make_nir
from roc.model import RocVersion

DATA, CATALOGUE = testing.shipped()
TARIFFS = DATA.tariffs
D = datetime.date
KEY = BeneficiaryKey(make_nir("1800599999001"), D(1980, 5, 1), 1)
SIM_NS = "urn:piano:roc:sim:v1"
#: The most any day's forfait or any flat participation has been in the table.
MAX_DAILY = max(e.value for c in (TariffCode.DAILY_CHARGE, TariffCode.DAILY_CHARGE_PSYCHIATRY)
                for e in TARIFFS.history(c))  # fmt: skip
MAX_FLAT = max(e.value for e in TARIFFS.history(TariffCode.FLAT_PARTICIPATION))

guarantees = st.builds(
    Guarantee,
    code=st.just("G"),
    label=st.just("G"),
    ticket_moderateur_percent=st.integers(0, 100),
    covers_daily_hospital_charge=st.booleans(),
    covers_flat_participation=st.booleans(),
    private_room_ceiling_cents=st.integers(0, 20_000),
    private_room_days_per_year=st.integers(0, 60),
    companion_ceiling_cents=st.integers(0, 20_000),
    fee_overrun_optam_percent=st.integers(0, 500),
    fee_overrun_non_optam_percent=st.integers(0, 500),
    responsible=st.booleans(),
)


@st.composite
def stays(draw: st.DrawFn) -> CareRequest:
    """A random request: any sector, kind of care and dates from 2005 to 2030, any lines."""
    start = draw(st.dates(D(2005, 1, 1), D(2030, 12, 31)))
    kind = draw(st.sampled_from(list(CareKind)))
    days = 1 if kind is CareKind.EXTERNAL else draw(st.integers(1, 40))
    end = start + datetime.timedelta(days=days - 1)
    lines = []
    for number in range(1, draw(st.integers(1, 8)) + 1):
        code = draw(st.sampled_from(list(LineCode)))
        first = start + datetime.timedelta(days=draw(st.integers(0, days - 1)))
        left = (end - first).days + 1
        quantity = draw(st.integers(1, left)) if code in DAILY_LINES else draw(st.integers(1, 3))
        price = draw(st.integers(0, 300_000))
        based = code in (LineCode.PJ, LineCode.GHS, LineCode.ACT, LineCode.DEP)
        base = draw(st.integers(0, 300_000)) if based else None
        if code in (LineCode.PJ, LineCode.GHS, LineCode.ACT) and draw(st.booleans()):
            price = base or 0  # usually charged at the base
        optam = draw(st.booleans()) if code is LineCode.DEP else None
        start_field = draw(st.sampled_from([None, first])) if first == start else first
        lines.append(CareLine(number, code, quantity, price, base, start_field, optam))
    exemption = draw(st.sampled_from([None, *Exemption]))
    return CareRequest(
        beneficiary=KEY,
        member_number=None,
        reference="SEJ-P",
        start=start,
        end=end,
        sector=draw(st.sampled_from(list(Sector))),
        care_kind=kind,
        amo_rate=100 if exemption else draw(st.integers(0, 100)),
        lines=tuple(lines),
        exemption=exemption,
    )


@st.composite
def covers(draw: st.DrawFn) -> Cover:
    """One to three contracts: held all along, consecutive (a change), or stacked."""
    count = draw(st.integers(1, 3))
    periods = []
    for index in range(count):
        start = draw(st.one_of(st.none(), st.dates(D(2004, 1, 1), D(2031, 12, 31))))
        end = draw(st.one_of(st.none(), st.dates(start or D(2004, 1, 1), D(2032, 12, 31))))
        periods.append(CoverPeriod(f"C{index}", draw(guarantees), start, end))
    return Cover(tuple(periods))


histories = st.builds(
    CareHistory, st.dictionaries(st.integers(2004, 2031), st.integers(0, 80), max_size=3)
)


def _bound(line: CareLine, request: CareRequest, guarantee: Guarantee) -> int:
    """The most *guarantee* can pay on *line*, were it in force every day."""
    q = line.quantity
    base = line.base_cents or 0
    if line.code in (LineCode.PJ, LineCode.GHS, LineCode.ACT):
        unit = base if line.code is LineCode.PJ else base * q
        units = q if line.code is LineCode.PJ else 1
        moderator = unit - percent(unit, request.amo_rate)
        tm = units * percent(moderator, guarantee.ticket_moderateur_percent)
        flat = MAX_FLAT if line.code is LineCode.ACT and guarantee.covers_flat_participation else 0
        return tm + flat
    if line.code is LineCode.FJH:
        return q * MAX_DAILY if guarantee.covers_daily_hospital_charge else 0
    if line.code is LineCode.CP:
        return q * min(line.unit_price_cents, guarantee.private_room_ceiling_cents)
    if line.code is LineCode.ACC:
        return q * min(line.unit_price_cents, guarantee.companion_ceiling_cents)
    share = max(guarantee.fee_overrun_optam_percent, guarantee.fee_overrun_non_optam_percent)
    return percent(base * q, share)


def _shares(amounts: Amounts) -> tuple[int, ...]:
    return (amounts.charged, amounts.amo, amounts.amc, amounts.patient, amounts.base)


@settings(max_examples=250, deadline=None)
@given(request=stays(), cover=covers(), history=histories)
def test_every_line_balances_no_share_is_negative_and_the_amc_stays_within_its_guarantees(
    request: CareRequest, cover: Cover, history: CareHistory
) -> None:
    statement = compute(request, cover, TARIFFS, history)
    assert [line.number for line in statement.lines] == [line.number for line in request.lines]
    for item in (*[line.amounts for line in statement.lines], statement.total):
        assert all(type(value) is int for value in _shares(item))  # integer cents throughout
        assert item.charged == item.amo + item.amc + item.patient
        assert min(_shares(item)) >= 0
    for line, answered in zip(request.lines, statement.lines, strict=True):
        bound = sum(_bound(line, request, p.guarantee) for p in cover.periods)
        assert answered.amounts.amc <= bound, line.code
        assert answered.amounts.amc <= answered.amounts.charged - answered.amounts.amo


@settings(max_examples=200, deadline=None)
@given(request=stays())
def test_an_amc_covering_nothing_pays_nothing(request: CareRequest) -> None:
    nothing = Guarantee("N", "N", 0, False, False, 0, 0, 0, 0, 0, True)
    assert compute(request, Cover.single(nothing), TARIFFS).total.amc == 0


def _world(cover: Cover) -> Dataset:
    contracts = tuple(Contract(p.contract_id, p.guarantee) for p in cover.periods)
    held = tuple(ContractPeriod(p.contract_id, p.start, p.end) for p in cover.periods)
    rights = (RightsPeriod(D(2000, 1, 1), None, frozenset(Sector)),)
    person = Beneficiary(KEY.nir, "FICTIF", "Alpha", KEY.birth_date, 1, "ALP1", "990000101",
                         held, rights)  # fmt: skip
    return Dataset((Amc("990000101", "Alpha", True, contracts),), (person,))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=stays(), cover=covers())
def test_sim_and_clc_agree_for_the_same_request(request: CareRequest, cover: Cover) -> None:
    dataset = _world(cover)
    identified = Identification("990000101", KEY, request.start, request.end, request.sector)
    sandbox = Sandbox("990000028", StrictClock(), SandboxSeed((identified,)))
    args = (request, "990000101", RocVersion.V2, dataset, TARIFFS, sandbox)
    estimate = simulate_in(*args)
    final = calculate(*args)
    assert (final.code, final.statement) == (estimate.code, estimate.statement)
    assert (final.engagement_number is not None) == (final.outcome is CareOutcome.ACCEPTED)
    assert final.statement is None or final.statement == compute(
        request, dataset.cover_of(dataset.beneficiaries[0]), TARIFFS, NO_HISTORY
    )
    # The same stay simulated after the CLC: still the same estimate (its own days not counted).
    assert simulate_in(*args).statement == estimate.statement


# -- One truth for the format -----------------------------------------------------------------

_TEMPLATE = CATALOGUE.get("990000101", "SIM_OK_OQN_DEPASSEMENTS_HONORAIRES")
assert _TEMPLATE is not None and isinstance(_TEMPLATE.request, CareRequest)
_ELEMENT = care_request_element(_TEMPLATE.request, "SIM")


def _with(path: str, text: str) -> etree._Element:
    element = copy.deepcopy(_ELEMENT)
    node = element.find("/".join(f"{{{SIM_NS}}}{step}" for step in path.split("/")))
    assert node is not None
    node.text = text
    return element


def _reads(element: etree._Element) -> CareRequest | None:
    try:
        return read_care_request(element, "SIM", validate=False)
    except RequestInvalid:
        return None


#: The lexical spaces of xs:decimal and xs:integer (XML Schema 1.0, part 2, 3.2.3 and 3.3.13).
DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
INTEGER = re.compile(r"[+-]?[0-9]+")

decimals = st.one_of(
    st.from_regex(r"\A[ ]?[+-]?[0-9]{0,13}(\.[0-9]{0,4})?[ ]?\Z"),
    st.sampled_from(["1e3", "NaN", "Infinity", "1_000", "٣", "0x10", "+", ".", "1,50"]),
)


@settings(max_examples=300, deadline=None)
@given(text=decimals)
def test_every_amount_the_schema_accepts_is_read_and_nothing_else(text: str) -> None:
    element = _with("Prestations/Prestation/PrixUnitaire", text)
    read = _reads(element)
    if validation_error(element, "SIM") is None:
        assert read is not None, text
        assert read.lines[0].unit_price_cents == Decimal(text.strip()) * 100
    if not DECIMAL.fullmatch(text.strip()):
        assert read is None, text


integers = st.one_of(
    st.from_regex(r"\A[ ]?[+-]?[0-9]{1,5}[ ]?\Z"),
    st.sampled_from(["4.0", "٤", "1_0", "", "+", "0x1"]),
)


@settings(max_examples=300, deadline=None)
@given(text=integers, path=st.sampled_from(["Prestations/Prestation/Quantite", "Sejour/TauxAMO",
                                            "Prestations/Prestation/NumeroLigne"]))  # fmt: skip
def test_every_integer_the_schema_accepts_is_read_and_nothing_else(text: str, path: str) -> None:
    element = _with(path, text)
    read = _reads(element)
    if not INTEGER.fullmatch(text.strip()):
        assert read is None, text
    if validation_error(element, "SIM") is None:
        assert read is not None, text
        value = {
            "Prestations/Prestation/Quantite": read.lines[0].quantity,
            "Sejour/TauxAMO": read.amo_rate,
            "Prestations/Prestation/NumeroLigne": read.lines[0].number,
        }[path]
        assert value == int(text)


@settings(max_examples=100, deadline=None)
@given(text=st.sampled_from(["true", "false", "1", "0", " true ", "TRUE", "yes", "", "2"]))
def test_every_boolean_the_schema_accepts_is_read_and_nothing_else(text: str) -> None:
    element = _with("Prestations/Prestation/Optam", text)
    optam = element.find(f".//{{{SIM_NS}}}Optam")
    assert optam is not None
    valid = validation_error(element, "SIM") is None
    read = _reads(element)
    assert (read is not None) == valid, text
    if read is not None:
        assert read.lines[3].optam is (text.strip() in ("true", "1"))


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.dates(D(1, 1, 1), D(9999, 12, 31)).map(D.isoformat),
        st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"),
        st.sampled_from(["2026-03-02Z", "0000-01-01", " 2026-03-03 ", "2026-3-2"]),
    )
)
def test_every_date_the_schema_accepts_is_read_and_nothing_else(text: str) -> None:
    element = _with("Sejour/DateDebut", text)
    valid = validation_error(element, "SIM") is None
    read = _reads(element)
    assert (read is not None) == valid, text
    if read is not None:
        assert read.start == D.fromisoformat(text.strip())


def test_the_catalogue_statements_agree_with_the_engine() -> None:
    for case in CATALOGUE:
        if case.expected_statement is not None and case.seeded is None:
            assert isinstance(case.request, CareRequest) and case.beneficiary is not None
            cover = DATA.dataset.cover_of(case.beneficiary)
            result: Statement = compute(case.request, cover, TARIFFS)
            assert result == case.expected_statement, case.name
