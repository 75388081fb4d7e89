"""The reference docs are generated from the code and must not drift from it."""

from __future__ import annotations

import pytest

from tools.gendocs import GENERATED, ROOT


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_reference_is_up_to_date(name: str) -> None:
    current = (ROOT / name).read_text()
    assert current == GENERATED[name](), f"{name} is stale: run `python -m tools.gendocs`"
