"""``python -m mutuelle.suite export DIR``: the catalogue as a suite a publisher replays.

Every business case of every AMC becomes a step (a DRE case: the IDB, SIM and CLC of its stay,
then the invoice quoting the CLC's engagement, captured as ``${engagement}``), expected as on a
fresh sandbox; steps about one beneficiary form one chain, played in order. Technical-fault
cases are left out (what a client sees of a dropped connection depends on who stands between).
With ``--sign-cert/--sign-key`` every request is signed (those carrying a variable are marked
``sign = true``: the replay signs them once the variable is known) and, of the signature cases,
only SIGNATURE_ABSENTE is kept, expecting ``MUT-400-SIGNATURE`` (a target under
``signatures.policy = 'require'``); the others need certificates a publisher does not hold.
Unsigned, signature cases expect what a target under ``'off'`` answers.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

from mutuelle.billing import Invoice
from mutuelle.care import Statement, euros
from mutuelle.catalogue import Case, Catalogue, default_catalogue
from mutuelle.examples import CONVENTION_TYPE, SECONDARY_CRITERION, body_element
from mutuelle.faults import MutuelleError
from mutuelle.soap import envelope, routing_element
from mutuelle.suite_model import Expectation, Step, Suite, write_suite
from roc.model import AmcKey, RoutingKey, Service, SoapVersion
from roc.signature import Defect, sign

#: The placeholder engagement number DRE cases carry in the catalogue.
_CLC_PLACEHOLDER = b">NUMERO-DU-CLC<"


@dataclasses.dataclass(frozen=True, slots=True)
class Sender:
    legal: str = "990000010"
    site: str = "990000028"


def _request(case: Case, exchange_id: str, sender: Sender) -> bytes:
    routing = RoutingKey(
        service=case.service,
        roc_version=case.version,
        amc=AmcKey(case.amc_number, CONVENTION_TYPE, SECONDARY_CRITERION),
        sender_finess_legal=sender.legal,
        sender_finess_site=sender.site,
        exchange_id=exchange_id,
    )
    return envelope(body_element(case), SoapVersion.SOAP11, [routing_element(routing)], pretty=True)


def _statement_expectation(statement: Statement | None) -> dict[str, object]:
    if statement is None:
        return {}

    def amounts(a: object) -> dict[str, str]:
        from mutuelle.care import Amounts

        assert isinstance(a, Amounts)
        return {
            "charged": euros(a.charged),
            "amo_base": euros(a.base),
            "amo": euros(a.amo),
            "amc": euros(a.amc),
            "patient": euros(a.patient),
        }

    return {
        "totals": amounts(statement.total),
        "lines": {line.number: amounts(line.amounts) for line in statement.lines},
    }


def _chain(case: Case) -> str:
    key = case.beneficiary
    who = "-" if key is None else f"{key.nir}/{key.birth_date}/{key.birth_rank}"
    return hashlib.sha256(f"{case.amc_number}/{who}".encode()).hexdigest()[:12]


def export_suite(
    catalogue: Catalogue, sender: Sender = Sender(), signer: tuple[bytes, bytes] | None = None
) -> tuple[Suite, dict[str, bytes]]:
    """The catalogue's business and signature cases as a suite and its request files."""
    steps: list[Step] = []
    files: dict[str, bytes] = {}

    def add(case: Case, suffix: str, expect: Expectation, document: bytes, **extra: object) -> None:
        number = len(steps) + 1
        step_id = f"{case.amc_number}/{case.name}{suffix}"
        name = f"requests/{number:04d}-{case.amc_number}-{case.name}{suffix.replace('/', '-')}.xml"
        wants_sign = signer is not None and extra.pop("signed", True)
        if wants_sign and b"${" not in document:
            assert signer is not None
            document = sign(document, *signer)
        elif wants_sign:
            extra["sign"] = True
        files[name] = document
        steps.append(
            Step(
                id=step_id,
                file=name,
                service=extra.pop("service", case.service),  # type: ignore[arg-type]
                chain=_chain(case),
                expect=expect,
                description=case.spec.description if not suffix else "",
                **extra,  # type: ignore[arg-type]
            )
        )

    for case in catalogue.all_cases:
        if case.technical_fault is not None:
            continue
        exchange = f"suite-{len(steps) + 1:04d}"
        defect = case.spec.signature
        if defect is not None and signer is not None:
            if defect is not Defect.MISSING:
                continue
            fault = MutuelleError.SIGNATURE_INVALID.spec
            expect = Expectation(status=fault.http_status, fault=fault.code)
            add(case, "", expect, _request(case, exchange, sender), signed=False)
            continue
        if isinstance(case.request, Invoice):
            for service, request in case.steps:
                step_case = dataclasses.replace(
                    case, spec=dataclasses.replace(case.spec, service=service), request=request
                )
                capture = {"engagement": "NumeroEngagement"} if service is Service.CLC else {}
                expect = Expectation(code="00") if service is Service.CLC else Expectation()
                document = _request(step_case, f"{exchange}-{service.value}", sender)
                add(case, f"/{service.value}", expect, document, service=service, capture=capture)
            document = _request(case, exchange, sender).replace(
                _CLC_PLACEHOLDER, b">${engagement}<"
            )
        else:
            document = _request(case, exchange, sender)
        shown = _statement_expectation(case.expected_statement)
        expect = Expectation(
            code=case.expected_code,
            label=case.expected_label,
            totals=shown.get("totals", {}),  # type: ignore[arg-type]
            lines=shown.get("lines", {}),  # type: ignore[arg-type]
        )
        add(case, "", expect, document)
    return Suite(name="catalogue", steps=tuple(steps)), files


_COMMENT = (
    "Mutuelle ANS's catalogue as a suite (python -m mutuelle.suite export), expected as on a\n"
    "fresh sandbox: replay it with python -m mutuelle.replay after resetting the sandbox."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mutuelle.suite", description="Write non-regression suites."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="the whole catalogue as a suite")
    export.add_argument("directory", type=Path)
    export.add_argument("--sender-legal", default=Sender().legal, help="FINESS juridique")
    export.add_argument("--sender-site", default=Sender().site, help="FINESS géographique")
    export.add_argument("--sign-cert", type=Path, help="PEM certificate signing every request")
    export.add_argument("--sign-key", type=Path, help="its PEM private key")
    args = parser.parse_args(argv)
    if (args.sign_cert is None) != (args.sign_key is None):
        parser.error("--sign-cert and --sign-key go together")
    signer = None
    if args.sign_cert is not None:
        try:
            signer = args.sign_cert.read_bytes(), args.sign_key.read_bytes()
        except OSError as e:
            print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
    suite, files = export_suite(
        default_catalogue(), Sender(args.sender_legal, args.sender_site), signer
    )
    write_suite(args.directory, suite, files, _COMMENT)
    print(f"{len(suite.steps)} steps in {len(suite.chains())} chains: {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
