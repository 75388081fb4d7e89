"""FINESS, NIR and AMC number checks: what is accepted, what is refused, and what a refusal says."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roc.identifiers import (
    amc_number_error,
    finess_error,
    make_finess,
    make_nir,
    nir_error,
    nir_key,
)

#: The department codes a FINESS may start with (metropolitan, Corsica, overseas).
DEPARTMENTS = [f"{n:02d}" for n in range(1, 96)] + ["2A", "2B", "97", "98", "99"]
#: Fictitious establishments of the development PKI (department 99 exists nowhere).
DEV_FINESS = ["990000010", "990000028", "990000036", "990000044", "990000051"]

finess_prefixes = st.builds(
    lambda dept, rest: dept + rest,
    st.sampled_from(DEPARTMENTS),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
)
nir13s = st.builds(
    lambda sex, year, month, dept, rest: sex + year + month + dept + rest,
    st.sampled_from("12378"),
    st.text(alphabet="0123456789", min_size=2, max_size=2),
    st.sampled_from([f"{m:02d}" for m in (*range(1, 13), *range(20, 100))]),
    st.sampled_from([f"{d:02d}" for d in range(100)] + ["2A", "2B"]),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
)


def luhn_valid(number: str) -> bool:
    """The textbook Luhn check of a whole number (key included), written independently."""
    total = 0
    for position, char in enumerate(reversed(number)):
        value = int(char) * (2 if position % 2 else 1)
        total += value // 10 + value % 10
    return total % 10 == 0


def no_long_digit_run(message: str) -> bool:
    """No identifier-like run of digits (the messages quote lengths, never values)."""
    return re.search(r"[0-9]{4,}", message) is None


# FINESS


@pytest.mark.parametrize("finess", DEV_FINESS)
def test_development_pki_finess_numbers_are_valid(finess: str) -> None:
    assert finess_error(finess) is None


@given(finess_prefixes)
def test_make_finess_completes_any_prefix_into_a_valid_finess(prefix: str) -> None:
    finess = make_finess(prefix)
    assert finess[:8] == prefix
    assert len(finess) == 9
    assert finess_error(finess) is None


@given(
    st.sampled_from([d for d in DEPARTMENTS if d.isdigit()]),
    st.text("0123456789", min_size=7, max_size=7),
)
def test_numeric_finess_is_valid_exactly_when_the_textbook_luhn_check_passes(
    dept: str, rest: str
) -> None:
    finess = dept + rest
    assert (finess_error(finess) is None) == luhn_valid(finess)


@given(finess_prefixes, st.integers(min_value=1, max_value=9))
def test_finess_with_a_wrong_check_digit_is_refused(prefix: str, shift: int) -> None:
    good = make_finess(prefix)
    wrong = good[:8] + str((int(good[8]) + shift) % 10)
    assert finess_error(wrong) == "FINESS check digit is wrong"


@given(
    finess_prefixes, st.integers(min_value=2, max_value=7), st.integers(min_value=1, max_value=9)
)
def test_a_single_mistyped_digit_in_a_finess_is_caught(
    prefix: str, position: int, shift: int
) -> None:
    good = make_finess(prefix)
    typo = good[:position] + str((int(good[position]) + shift) % 10) + good[position + 1 :]
    assert finess_error(typo) is not None


@pytest.mark.parametrize("dept", ["2A", "2B"])
def test_corsican_finess_numbers_are_accepted(dept: str) -> None:
    finess = make_finess(dept + "000123")
    assert finess_error(finess) is None
    assert finess.startswith(dept)


@pytest.mark.parametrize(
    ("finess", "reason"),
    [
        ("99000001", "FINESS must be 9 characters"),
        ("9900000100", "FINESS must be 9 characters"),
        ("", "FINESS must be 9 characters"),
        ("000000018", "FINESS must be a department code then 7 digits"),
        ("960000018", "FINESS must be a department code then 7 digits"),
        ("2C0000018", "FINESS must be a department code then 7 digits"),
        ("2a0000018", "FINESS must be a department code then 7 digits"),
        ("99000001X", "FINESS must be a department code then 7 digits"),
        (" 99000001", "FINESS must be a department code then 7 digits"),
        (
            "\uff19\uff19\uff10\uff10\uff10\uff10\uff10\uff11\uff10",
            "FINESS must be a department code then 7 digits",
        ),
        (
            "\u0669\u0669\u0660\u0660\u0660\u0660\u0660\u0661\u0660",
            "FINESS must be a department code then 7 digits",
        ),
    ],
)
def test_malformed_finess_is_refused_with_the_rule_broken(finess: str, reason: str) -> None:
    assert finess_error(finess) == reason


@given(st.text(alphabet="0123456789AB -x", min_size=4, max_size=20))
def test_finess_refusals_never_quote_the_value(value: str) -> None:
    reason = finess_error(value)
    if reason is not None:
        assert value not in reason
        assert no_long_digit_run(reason)


# NIR


def test_nir_key_matches_a_worked_example() -> None:
    # 1 89 12 75 125 012: 1891275125012 mod 97 = 15, so the key is 97 - 15 = 82.
    assert nir_key("1891275125012") == 82
    assert nir_error("189127512501282") is None


@given(nir13s)
def test_make_nir_completes_any_well_formed_nir_into_a_valid_one(nir13: str) -> None:
    nir = make_nir(nir13)
    assert nir[:13] == nir13
    assert len(nir) == 15
    assert nir_error(nir) is None


@given(
    st.sampled_from([("2A", 1_000_000), ("2B", 2_000_000)]),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
)
def test_corsican_nir_key_subtracts_one_or_two_million_from_the_number_read_with_20(
    corsica: tuple[str, int], rest: str
) -> None:
    dept, subtracted = corsica
    nir13 = f"18507{dept}{rest}"
    as_twenty = int(f"1850720{rest}")
    assert nir_key(nir13) == 97 - (as_twenty - subtracted) % 97
    assert nir_error(make_nir(nir13)) is None


def test_corsica_2a_and_2b_do_not_share_a_key() -> None:
    assert nir_key("185072A123456") != nir_key("185072B123456")


@given(nir13s, st.integers(min_value=1, max_value=96))
def test_nir_with_a_wrong_key_is_refused(nir13: str, shift: int) -> None:
    good = nir_key(nir13)
    wrong = (good - 1 + shift) % 97 + 1
    assert nir_error(f"{nir13}{wrong:02d}") == "NIR key is wrong"


@pytest.mark.parametrize(
    ("nir", "reason"),
    [
        ("18912751250128", "NIR must be 15 characters (13 plus a 2-digit key)"),
        ("1891275125012820", "NIR must be 15 characters (13 plus a 2-digit key)"),
        ("489127512501282", "NIR format is invalid"),  # sex digit 4
        ("189007512501282", "NIR format is invalid"),  # month 00
        ("189137512501282", "NIR format is invalid"),  # month 13
        ("18912.512501282", "NIR format is invalid"),
        ("189122C12501282", "NIR format is invalid"),
        ("1891275125012AB", "NIR format is invalid"),
    ],
)
def test_malformed_nir_is_refused_with_the_rule_broken(nir: str, reason: str) -> None:
    assert nir_error(nir) == reason


@given(nir13s, st.integers(min_value=0, max_value=99))
def test_nir_refusals_never_quote_the_nir(nir13: str, key: int) -> None:
    nir = f"{nir13}{key:02d}"
    reason = nir_error(nir)
    if reason is not None:
        assert nir13 not in reason
        assert no_long_digit_run(reason)


# AMC number


@pytest.mark.parametrize("amc", ["990000101", "000000000", "123456789"])
def test_nine_digit_amc_numbers_are_accepted(amc: str) -> None:
    assert amc_number_error(amc) is None


@pytest.mark.parametrize(
    "amc",
    ["99000010", "9900001011", "99000010A", "", " 990000101", "990000101\n", "\u0669" * 9],
)
def test_amc_numbers_that_are_not_nine_ascii_digits_are_refused(amc: str) -> None:
    assert amc_number_error(amc) == "AMC number must be 9 digits"
