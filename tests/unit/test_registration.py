"""Sites and legal entities: who may speak for which site (pure logic)."""

from __future__ import annotations

import pytest

from rpn.registration import Registration

A_LEGAL, A_SITE, A_SITE_2 = "990000010", "990000028", "990000069"
B_LEGAL, B_SITE = "990000036", "990000044"


@pytest.fixture
def registration() -> Registration:
    return Registration.of([(A_LEGAL, [A_SITE, A_SITE_2]), (B_LEGAL, [B_SITE])])


def test_a_site_and_its_legal_entity_are_both_known(registration: Registration) -> None:
    assert all(registration.knows(f) for f in (A_LEGAL, A_SITE, A_SITE_2, B_LEGAL, B_SITE))
    assert not registration.knows("990000051")
    assert len(registration) == 2


@pytest.mark.parametrize("certificate", [A_SITE, A_LEGAL])
def test_a_site_or_its_legal_entity_may_send_for_the_site(
    registration: Registration, certificate: str
) -> None:
    assert registration.sender_refusal(certificate, A_LEGAL, A_SITE) is None


def test_a_legal_entity_may_send_for_each_of_its_sites(registration: Registration) -> None:
    assert registration.sender_refusal(A_LEGAL, A_LEGAL, A_SITE_2) is None


def test_a_site_may_not_send_for_a_sister_site(registration: Registration) -> None:
    refusal = registration.sender_refusal(A_SITE, A_LEGAL, A_SITE_2)
    assert (
        refusal
        == f"certificate FINESS {A_SITE} is neither site {A_SITE_2} nor its legal entity {A_LEGAL}"
    )


@pytest.mark.parametrize(
    ("certificate", "legal", "site", "reason"),
    [
        (
            B_SITE,
            B_SITE,
            A_SITE,
            f"site {A_SITE} is registered under legal entity {A_LEGAL}, not {B_SITE}",
        ),
        (
            B_LEGAL,
            B_LEGAL,
            A_SITE,
            f"site {A_SITE} is registered under legal entity {A_LEGAL}, not {B_LEGAL}",
        ),
        (B_LEGAL, A_LEGAL, A_SITE, f"certificate FINESS {B_LEGAL} is neither site {A_SITE}"),
        (A_SITE, A_LEGAL, "990000051", "site 990000051 named by the message is not registered"),
        (A_SITE, "", A_SITE, "FinessJuridique is missing"),
        (A_SITE, A_LEGAL, "", "FinessGeographique is missing"),
    ],
)
def test_every_other_pair_is_refused_with_the_finess_read_and_named(
    registration: Registration, certificate: str, legal: str, site: str, reason: str
) -> None:
    refusal = registration.sender_refusal(certificate, legal, site)
    assert refusal is not None and reason in refusal
    assert certificate in refusal


def test_a_site_registered_under_two_legal_entities_is_refused() -> None:
    with pytest.raises(
        ValueError, match=f"site {A_SITE} is registered under {A_LEGAL} and {B_LEGAL}"
    ):
        Registration.of([(A_LEGAL, [A_SITE]), (B_LEGAL, [A_SITE])])


def test_a_legal_entity_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        Registration.of([(A_LEGAL, [A_SITE]), (A_LEGAL, [A_SITE_2])])
