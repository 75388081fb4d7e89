"""The example configurations shipped in etc/ load: they cannot rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

from indicators.config import load_config as load_indicators
from mutuelle.config import load_config as load_mutuelle
from rpn.annuaire_sources import StaticAnnuaireSource
from rpn.config import load_config as load_rpn

ETC = Path(__file__).resolve().parents[2] / "etc"


@pytest.mark.parametrize("name", ["rpn.toml", "dev/rpn.toml"])
def test_relay_examples_load(name: str) -> None:
    config = load_rpn(ETC / name)
    assert config.establishments.legal_entities


@pytest.mark.parametrize("name", ["mutuelle.toml", "dev/mutuelle.toml"])
def test_simulator_examples_load(name: str) -> None:
    assert load_mutuelle(ETC / name).public_url.startswith("https://")


@pytest.mark.parametrize("name", ["indicators.toml", "dev/indicators.toml"])
def test_indicators_examples_load(name: str) -> None:
    load_indicators(ETC / name)


@pytest.mark.parametrize("name", ["annuaire.toml", "dev/annuaire.toml"])
def test_annuaire_examples_load(name: str) -> None:
    assert StaticAnnuaireSource.from_file(ETC / name).entries
