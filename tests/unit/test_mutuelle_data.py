"""The shipped fictitious data: deterministic from its seed, fictitious, and checked on load."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from mutuelle import generate
from mutuelle.catalogue import UNKNOWN_BENEFICIARY, WRONG_MEMBER_NUMBER
from mutuelle.datafiles import (
    BENEFICIARIES_FILE,
    DATA_FILES,
    DataError,
    load_data,
    parse_data,
    render_data,
)
from mutuelle.model import fictitious_nir_error
from roc.identifiers import make_nir, nir_error

SHIPPED_SEED = 2026


def shipped_texts() -> dict[str, str]:
    package = resources.files("mutuelle.data")
    return {name: package.joinpath(name).read_text("utf-8") for name in DATA_FILES}


def test_shipped_files_are_exactly_what_the_seed_generates() -> None:
    assert render_data(generate.generate(SHIPPED_SEED)) == shipped_texts()


def test_generate_command_writes_the_shipped_files(tmp_path: Path) -> None:
    assert generate.main(["--seed", str(SHIPPED_SEED), "--out", str(tmp_path)]) == 0
    for name, text in shipped_texts().items():
        assert (tmp_path / name).read_text("utf-8") == text


def test_another_seed_gives_other_people_but_the_same_amcs_and_cases() -> None:
    other = generate.generate(SHIPPED_SEED + 1)
    shipped = load_data()
    assert other.dataset.amcs == shipped.dataset.amcs  # drawn from AMC and guarantee codes
    assert other.case_beneficiaries == shipped.case_beneficiaries  # from the case names
    assert {b.nir for b in other.dataset.beneficiaries} != {
        b.nir for b in shipped.dataset.beneficiaries
    }


def test_the_relay_dev_annuaire_amcs_exist_with_third_party_payment() -> None:
    dataset = load_data().dataset
    expected = {
        "990000101": "Mutuelle Alpha (fictive)",
        "990000202": "Mutuelle Beta (fictive)",
        "990000303": "Mutuelle Gamma (fictive)",
    }
    for number, name in expected.items():
        amc = dataset.amc(number)
        assert amc is not None
        assert amc.name == name
        assert amc.third_party_payment
        assert amc.contracts


def test_every_nir_is_valid_and_from_the_documented_fictitious_range() -> None:
    for person in load_data().dataset.beneficiaries:
        assert nir_error(person.nir) is None
        assert fictitious_nir_error(person.nir) is None
        assert person.nir[0] in "12"
        assert person.nir[5:7] == "99" and person.nir[7:10] == "999"
        assert int(person.nir[10:13]) < 900  # 900-999 stay free for unknown beneficiaries


def test_every_person_has_an_obviously_fictitious_surname() -> None:
    for person in load_data().dataset.beneficiaries:
        assert person.last_name in generate.LAST_NAMES


def test_the_unknown_beneficiary_and_the_wrong_member_number_belong_to_nobody() -> None:
    people = load_data().dataset.beneficiaries
    assert fictitious_nir_error(UNKNOWN_BENEFICIARY.nir) is None
    assert all(p.nir != UNKNOWN_BENEFICIARY.nir for p in people)
    assert all(p.member_number != WRONG_MEMBER_NUMBER for p in people)


def test_fictitious_range_refuses_a_real_looking_nir() -> None:
    assert fictitious_nir_error(make_nir("1800575123456")) is not None
    assert fictitious_nir_error(make_nir("3800599999001")) is not None
    assert fictitious_nir_error(make_nir("1800599999001")) is None


def test_data_dir_override_is_read(tmp_path: Path) -> None:
    data = generate.generate(7)
    for name, text in render_data(data).items():
        (tmp_path / name).write_text(text, "utf-8")
    assert load_data(tmp_path).dataset == data.dataset


def _broken(old: str, new: str) -> dict[str, str]:
    texts = shipped_texts()
    assert old in texts[BENEFICIARIES_FILE]
    texts[BENEFICIARIES_FILE] = texts[BENEFICIARIES_FILE].replace(old, new, 1)
    return texts


def test_a_wrong_nir_key_is_refused_with_its_entry_but_not_its_value() -> None:
    first = load_data().dataset.beneficiaries[0].nir
    wrong = first[:13] + f"{(int(first[13:]) + 1) % 100:02d}"
    with pytest.raises(DataError) as caught:
        parse_data(_broken(f'nir = "{first}"', f'nir = "{wrong}"'))
    assert str(caught.value) == "beneficiaries.toml: beneficiary[0].nir: NIR key is wrong"


def test_a_real_looking_nir_is_refused() -> None:
    first = load_data().dataset.beneficiaries[0].nir
    real = make_nir(first[:5] + "75" + "123" + first[10:13])
    with pytest.raises(DataError, match=r"beneficiary\[0\]\.nir: fictitious NIR must"):
        parse_data(_broken(f'nir = "{first}"', f'nir = "{real}"'))


def test_unknown_keys_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"beneficiary\[0\]\.nickname: unknown key"):
        parse_data(_broken("[[beneficiary]]\n", '[[beneficiary]]\nnickname = "x"\n'))
    with pytest.raises(DataError, match=r"amcs\.toml: cannot read"):
        load_data(tmp_path)
