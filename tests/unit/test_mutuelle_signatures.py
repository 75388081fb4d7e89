"""Mutuelle ANS checks request signatures by policy: each signature case as a client sees it."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from mutuelle import testing
from mutuelle.admin import AdminApi
from mutuelle.catalogue import Case
from mutuelle.codec import read_idb_answer
from mutuelle.config import load_config
from mutuelle.examples import case_request
from mutuelle.sandbox import MemoryStore
from mutuelle.service import build_service
from mutuelle.signatures import SIGNATURE_FIELD, SignaturePolicy
from mutuelle.simulator import Simulator
from mutuelle.soap import read_envelope, request_headers
from mutuelle.wording import SIGNATURE_REASONS
from piano.config import ConfigError
from piano.testing import StrictClock, StrictMemoryReactorClock
from roc.model import Service, SoapVersion
from roc.signature import WSSE_NS, WSU_NS, Defect, Trust, verify
from tests.deferreds import success_result_of
from tools.devpki import HOSPITAL_A, HOSPITAL_B, issue, make_ca
from tools.signing import Signers, pem_of, signed_as

DATA, CATALOGUE = testing.shipped()
AMC = "990000101"
SITE_A = HOSPITAL_A["site"]
NOW = datetime.datetime.now(datetime.UTC)


class Pki:
    def __init__(self) -> None:
        ca = make_ca("Test CA")
        rogue = make_ca("Rogue CA")
        a, b = HOSPITAL_A["site"], HOSPITAL_B["site"]
        self.signers = Signers(
            sender=pem_of(issue(ca, "A", client=True, finess=a)),
            other=pem_of(issue(ca, "B", client=True, finess=b)),
            untrusted=pem_of(issue(rogue, "R", client=True, finess=a)),
            expired=pem_of(
                issue(
                    ca,
                    "A old",
                    client=True,
                    finess=a,
                    not_before=NOW - datetime.timedelta(days=400),
                    not_after=NOW - datetime.timedelta(days=1),
                )
            ),
        )
        self.trust = Trust([ca.certificate])


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _simulator(pki: Pki, policy: SignaturePolicy) -> Simulator:
    return testing.checking_simulator(pki.trust, policy, NOW.timestamp())


def _send(sim: Simulator, case: Case, defect: Defect | None, pki: Pki) -> tuple[int, bytes]:
    message = case_request(case, "sig-" + case.name.lower().replace("_", "-"))
    body = signed_as(message, defect, pki.signers)
    headers = request_headers(Service.IDB, SoapVersion.SOAP11)
    reply = sim.handle("IDB", "POST", headers["Content-Type"], headers["SOAPAction"], body, SITE_A)
    return reply.status, reply.body


SIGNATURE_CASES = [c for c in CATALOGUE.signature if c.amc_number == AMC]


def test_the_catalogue_has_one_signature_case_per_rule() -> None:
    names = {case.name for case in SIGNATURE_CASES}
    assert names == {f"IDB_KO_MCO_{defect.value}" for defect in Defect}
    assert all(case.spec.signature is not None for case in SIGNATURE_CASES)


@pytest.mark.parametrize("case", SIGNATURE_CASES, ids=lambda c: c.name)
def test_under_require_each_case_gets_the_signature_fault_naming_its_rule(
    case: Case, pki: Pki
) -> None:
    sim = _simulator(pki, SignaturePolicy.REQUIRE)
    status, body = _send(sim, case, case.spec.signature, pki)
    assert status == 400
    assert b"MUT-400-SIGNATURE" in body
    assert case.spec.signature is not None
    assert f"[{case.spec.signature.value}]".encode() in body
    assert SIGNATURE_REASONS[case.spec.signature].encode() in body
    entry = sim.sandboxes.get(SITE_A).journal[-1]
    assert entry.outcome == "MUT-400-SIGNATURE"
    assert [(v.field, v.rule) for v in entry.violations] == [
        (SIGNATURE_FIELD, case.spec.signature.value)
    ]


@pytest.mark.parametrize("case", SIGNATURE_CASES, ids=lambda c: c.name)
def test_under_report_each_case_is_served_and_its_violation_recorded(case: Case, pki: Pki) -> None:
    sim = _simulator(pki, SignaturePolicy.REPORT)
    status, body = _send(sim, case, case.spec.signature, pki)
    assert status == 200, body
    answer = read_idb_answer(read_envelope(body, 1 << 20).body)
    assert answer.code == "00"
    sandbox = sim.sandboxes.get(SITE_A)
    entry = sandbox.journal[-1]
    assert entry.case == case.name
    assert case.spec.signature is not None
    assert [v.rule for v in entry.violations] == [case.spec.signature.value]
    assert sandbox.conformance_summary()["violations_by_rule"] == {case.spec.signature.value: 1}


def test_a_validly_signed_request_passes_under_require(pki: Pki) -> None:
    case = CATALOGUE.get(AMC, "IDB_OK_MCO_DROITS_OUVERTS")
    assert case is not None
    sim = _simulator(pki, SignaturePolicy.REQUIRE)
    status, body = _send(sim, case, None, pki)
    assert status == 200, body
    entry = sim.sandboxes.get(SITE_A).journal[-1]
    assert entry.case == case.name and entry.violations == ()


def test_under_off_nothing_is_checked(pki: Pki) -> None:
    case = CATALOGUE.get(AMC, "IDB_KO_MCO_SIGNATURE_EMPREINTE")
    assert case is not None
    sim = _simulator(pki, SignaturePolicy.OFF)
    status, _ = _send(sim, case, Defect.DIGEST, pki)
    assert status == 200
    assert sim.sandboxes.get(SITE_A).journal[-1].violations == ()


class _Admin:
    """The admin API answered at once (the memory store runs its units of work in the call)."""

    def __init__(self, api: AdminApi) -> None:
        self.api = api

    def handle(
        self, method: str, segments: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        return success_result_of(self.api.handle(method, segments, query, body))


def test_a_sandbox_overrides_the_configured_policy_through_the_admin_api(pki: Pki) -> None:
    case = CATALOGUE.get(AMC, "IDB_KO_MCO_SIGNATURE_ABSENTE")
    assert case is not None
    sim = _simulator(pki, SignaturePolicy.OFF)
    admin = _Admin(AdminApi(MemoryStore(sim.sandboxes)))
    status, summary = admin.handle(
        "PUT", ["sandboxes", SITE_A, "signature"], {}, {"policy": "require"}
    )
    assert status == 200 and summary["signature_policy"] == "require"
    assert _send(sim, case, Defect.MISSING, pki)[0] == 400
    # Another establishment's sandbox keeps the configuration's policy.
    other = sim.handle(
        "IDB",
        "POST",
        "text/xml; charset=utf-8",
        '"urn:piano:roc:IDB"',
        case_request(case, "x-1"),
        HOSPITAL_B["site"],
    )
    assert other.status == 200
    status, _ = admin.handle("PUT", ["sandboxes", SITE_A, "signature"], {}, {"policy": "nope"})
    assert status == 400
    admin.handle("DELETE", ["sandboxes", SITE_A, "signature"], {}, None)
    assert _send(sim, case, Defect.MISSING, pki)[0] == 200


def test_the_admin_api_refuses_checking_without_trusted_authorities() -> None:
    sim = testing.simulator()
    admin = _Admin(AdminApi(MemoryStore(sim.sandboxes), signatures_checkable=False))
    status, answer = admin.handle(
        "PUT", ["sandboxes", SITE_A, "signature"], {}, {"policy": "report"}
    )
    assert status == 409 and "ca_certificates" in answer["error"]


def test_the_configuration_sets_the_policy_and_requires_trusted_cas(tmp_path: Path) -> None:
    from tools.devpki import generate

    generate(tmp_path / "pki")
    text = """
public_url = "https://127.0.0.1:8444"
[tls]
certificate = "pki/mutuelle-server.pem"
private_key = "pki/mutuelle-server.key"
ca_certificates = [CAS]
[listen]
endpoint = "tcp:0:interface=127.0.0.1"
[admin]
endpoint = "tcp:0:interface=127.0.0.1"
[plain]
[faults]
[signatures]
policy = "require"
"""
    path = tmp_path / "mutuelle.toml"
    path.write_text(text.replace("CAS", '"pki/ca.pem"'))
    service = build_service(load_config(path), StrictMemoryReactorClock(), DATA)
    assert service.simulator.signature_policy is SignaturePolicy.REQUIRE
    assert service.simulator.signature_trust is not None
    path.write_text(text.replace("CAS", ""))
    with pytest.raises(ConfigError, match=r"signatures\.ca_certificates"):
        build_service(load_config(path), StrictMemoryReactorClock(), DATA)
    path.write_text(text.replace("CAS", "").replace('"require"', '"sometimes"'))
    with pytest.raises(ConfigError, match=r"signatures\.policy"):
        load_config(path)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _unsigned(data: bytes) -> bytes:
    """*data* without its wsse:Security header and wsu:Id attributes, canonicalised."""
    root = etree.fromstring(data)
    for security in root.iter(f"{{{WSSE_NS}}}Security"):
        parent = security.getparent()
        assert parent is not None
        parent.remove(security)
    for element in root.iter():
        element.attrib.pop(f"{{{WSU_NS}}}Id", None)
    etree.cleanup_namespaces(root)
    return etree.tostring(root, method="c14n")


@pytest.mark.parametrize("path", sorted((EXAMPLES / "signed").glob("*.xml")), ids=lambda p: p.name)
def test_each_signed_example_verifies_and_is_its_example_signed(path: Path) -> None:
    trust = Trust.from_files([EXAMPLES / "signed" / "ca.pem"])
    signed = path.read_bytes()
    verified = verify(etree.fromstring(signed), trust, NOW, (HOSPITAL_A["legal"], SITE_A))
    assert verified.signer_finess == SITE_A
    assert _unsigned(signed) == _unsigned((EXAMPLES / path.name).read_bytes()), (
        f"stale: python -m tools.sign_examples rewrites examples/signed/{path.name}"
    )


def test_every_example_with_a_routing_block_has_a_signed_copy() -> None:
    unsigned = {p.name for p in EXAMPLES.glob("*.xml")} - {"ann.xml"}
    assert unsigned == {p.name for p in (EXAMPLES / "signed").glob("*.xml")}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("idb-droits-ouverts.xml", "00"),
        ("idb-droits-fermes.xml", "02"),
        ("idb-beneficiaire-inconnu.xml", "01"),
    ],
)
def test_signed_idb_examples_get_their_answer_when_signatures_are_required(
    name: str, code: str
) -> None:
    clock = StrictClock()
    clock.advance(NOW.timestamp())
    sim = Simulator(
        DATA,
        CATALOGUE,
        testing.PUBLIC_URL,
        clock=clock,
        signature_policy=SignaturePolicy.REQUIRE,
        signature_trust=Trust.from_files([EXAMPLES / "signed" / "ca.pem"]),
    )
    headers = request_headers(Service.IDB, SoapVersion.SOAP11)
    reply = sim.handle(
        "IDB",
        "POST",
        headers["Content-Type"],
        headers["SOAPAction"],
        (EXAMPLES / "signed" / name).read_bytes(),
        SITE_A,
    )
    assert reply.status == 200, reply.body
    assert read_idb_answer(read_envelope(reply.body, 1 << 20).body).code == code
    unsigned = sim.handle(
        "IDB",
        "POST",
        headers["Content-Type"],
        headers["SOAPAction"],
        (EXAMPLES / name).read_bytes(),
        SITE_A,
    )
    assert unsigned.status == 400 and b"SIGNATURE_ABSENTE" in unsigned.body


def test_the_json_catalogue_says_how_each_signature_case_is_signed_and_refused() -> None:
    from mutuelle.catalogue_json import catalogue_json
    from mutuelle.specs_signature import HOW_SENT

    items = {(item["amc"], item["id"]): item for item in catalogue_json(CATALOGUE)}
    for case in CATALOGUE.all_cases:
        expected = items[(case.amc_number, case.name)]["expected"]
        defect = case.spec.signature
        if defect is None:
            assert "signature" not in expected
            continue
        assert expected["code"] == "00"  # the answer under "report" (and "off")
        assert expected["signature"] == {
            "rule": defect.value,
            "sent": HOW_SENT[defect],
            "fault_code": "MUT-400-SIGNATURE",
            "reason": SIGNATURE_REASONS[defect],
        }
