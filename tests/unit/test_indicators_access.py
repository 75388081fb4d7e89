"""Who reads what: the certificate's FINESS names the establishment; listed certificates are
the agency's."""

from __future__ import annotations

from pathlib import Path

import pytest

from indicators.access import Identity, agency_fingerprints, agent_name, identify
from piano.tls import TLSConfigError
from tools import devpki

A, B = devpki.HOSPITAL_A["site"], devpki.HOSPITAL_B["site"]


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, devpki.Issued]]:
    directory = tmp_path_factory.mktemp("pki")
    ca = devpki.make_ca("Test CA")
    certs = {
        "a": devpki.issue(ca, "A", client=True, finess=A),
        "agency": devpki.issue(ca, "Agency", client=True),
        "agency-with-finess": devpki.issue(ca, "Agency site", client=True, finess=B),
    }
    for stem, cert in certs.items():
        devpki.write(directory, stem, cert)
    return directory, certs


def test_an_establishment_certificate_reads_only_its_own_finess(
    issued: tuple[Path, dict[str, devpki.Issued]],
) -> None:
    directory, certs = issued
    agency = agency_fingerprints([directory / "agency.pem"])
    reader = identify(certs["a"].certificate, "OU", agency)
    assert reader == Identity(finess=A)
    assert reader.may_read(A) and not reader.may_read(B)


def test_a_listed_agency_certificate_reads_everything_even_if_it_carries_a_finess(
    issued: tuple[Path, dict[str, devpki.Issued]],
) -> None:
    directory, certs = issued
    agency = agency_fingerprints([directory / "agency.pem", directory / "agency-with-finess.pem"])
    for stem in ("agency", "agency-with-finess"):
        reader = identify(certs[stem].certificate, "OU", agency)
        assert reader.agency and reader.may_read(A) and reader.may_read(B)
    # The agent the promotion page names: the certificate's common name.
    assert identify(certs["agency"].certificate, "OU", agency).name == "Agency"


def test_no_certificate_or_no_finess_reads_nothing(
    issued: tuple[Path, dict[str, devpki.Issued]],
) -> None:
    _, certs = issued
    assert not identify(None, "OU", frozenset()).known
    unlisted = identify(certs["agency"].certificate, "OU", frozenset())
    assert not unlisted.known and not unlisted.may_read(A)


def test_an_agency_file_without_certificate_fails_at_start_up(tmp_path: Path) -> None:
    empty = tmp_path / "agency.pem"
    empty.write_text("")
    with pytest.raises(TLSConfigError):
        agency_fingerprints([empty])


def test_an_agent_is_named_by_a_printable_common_name_or_else_the_fingerprint() -> None:
    ca = devpki.make_ca("Test CA")
    odd = devpki.issue(ca, "Agnès\tDupont\n", client=True).certificate
    assert agent_name(odd) == "AgnèsDupont"
    blank = devpki.issue(ca, " ", client=True).certificate
    assert agent_name(blank).startswith("certificat sha256:")
