"""``python -m mutuelle.suite export DIR``: the catalogue as a suite a publisher replays;
``python -m mutuelle.suite record --admin URL --sandbox FINESS [--trainee T] [--since TIME]
DIR``: what a sandbox received (its journal keeps request and answer bodies, fictitious data),
the answers observed as expectations, one chain in the order received.

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
import datetime
import hashlib
import json
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mutuelle.billing import Invoice
from mutuelle.care import Statement, euros
from mutuelle.catalogue import Case, Catalogue, default_catalogue
from mutuelle.examples import CONVENTION_TYPE, SECONDARY_CRITERION, body_element
from mutuelle.faults import MutuelleError
from mutuelle.soap import envelope
from mutuelle.suite_model import Expectation, Step, Suite, read_answer, write_suite
from mutuelle.trainees import BadTrainee, trainee_sandbox
from roc.model import AmcKey, RoutingKey, Service, SoapVersion
from roc.routing import routing_block
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
    return envelope(body_element(case), SoapVersion.SOAP11, [routing_block(routing)], pretty=True)


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


def record_suite(
    entries: Sequence[Mapping[str, Any]], since: datetime.datetime | None = None
) -> tuple[Suite, dict[str, bytes], int]:
    """A suite from a sandbox's journal entries (``?bodies=1``): what it received, the answers
    observed as expectations, in one chain. An engagement number a CLC got is captured and
    quoted by the later requests that carry it. Entries without a kept body, before *since*,
    or whose answer was a technical fault are skipped: the suite and files, and how many."""
    steps: list[Step] = []
    files: dict[str, bytes] = {}
    captured: dict[str, str] = {}  # engagement number -> variable
    skipped = 0
    for item in entries:
        request = str(item.get("request") or "").encode("utf-8")
        answer = str(item.get("answer") or "").encode("utf-8")
        when = datetime.datetime.fromisoformat(str(item["time"]))
        if not request or item.get("technical_fault") or (since is not None and when < since):
            skipped += 1
            continue
        try:
            service = Service(str(item["service"]))
        except ValueError:
            skipped += 1
            continue
        observed = read_answer(int(item["http_status"]), answer, ("NumeroEngagement",))
        if observed.error is not None:
            skipped += 1
            continue
        signed = b"Signature" in request
        for known, variable in captured.items():
            if f">{known}<".encode() in request and not signed:
                request = request.replace(f">{known}<".encode(), f">${{{variable}}}<".encode())
        capture: dict[str, str] = {}
        number = observed.values.get("NumeroEngagement")
        if service is Service.CLC and observed.code == "00" and number and number not in captured:
            captured[number] = capture_name = f"engagement_{len(captured) + 1}"
            capture[capture_name] = "NumeroEngagement"
        sequence = int(item.get("sequence", len(steps) + 1))
        step_id = f"{sequence:05d}-{service.value}"
        name = f"requests/{step_id}.xml"
        files[name] = request
        expect = Expectation(
            status=observed.status or 200,
            code=observed.code,
            label=observed.label,
            totals=dict(observed.totals),
            lines={n: dict(a) for n, a in observed.lines.items()},
            fault=observed.fault,
        )
        case = str(item.get("case") or "")
        steps.append(
            Step(
                id=step_id,
                file=name,
                service=service,
                chain="session",
                expect=expect,
                capture=capture,
                description=f"recorded: case {case}" if case else "recorded",
            )
        )
    return Suite(name="recorded", steps=tuple(steps)), files, skipped


def _journal(admin: str, sandbox: str) -> list[dict[str, Any]]:
    url = f"{admin.rstrip('/')}/__admin/sandboxes/{sandbox}/journal?limit=10000&bodies=1"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (the admin URL)
        document = json.loads(response.read())
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise ValueError("the admin API answered no journal entries")
    return entries


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
    record = commands.add_parser("record", help="a sandbox's journal as a suite")
    record.add_argument("directory", type=Path)
    record.add_argument("--admin", required=True, help="the simulator's admin URL")
    record.add_argument("--sandbox", required=True, help="the establishment's FINESS")
    record.add_argument("--trainee", help="a trainee's sandbox within it")
    record.add_argument(
        "--since", type=_time, help="ISO 8601 time (sandbox time, UTC if no offset)"
    )
    args = parser.parse_args(argv)
    if args.command == "record":
        return _record(args)
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


def _time(text: str) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def _record(args: argparse.Namespace) -> int:
    try:
        sandbox = trainee_sandbox(args.sandbox, args.trainee)
    except BadTrainee as e:
        print(f"error: --trainee: {e}", file=sys.stderr)
        return 2
    try:
        entries = _journal(args.admin, sandbox)
    except (OSError, ValueError) as e:
        print(f"error: cannot read the journal of {sandbox} at {args.admin}: {e}", file=sys.stderr)
        return 2
    suite, files, skipped = record_suite(entries, args.since)
    if not suite.steps:
        print(f"error: nothing to record in {sandbox} ({skipped} entries skipped)", file=sys.stderr)
        return 2
    comment = f"Recorded from sandbox {sandbox} (python -m mutuelle.suite record)."
    write_suite(args.directory, suite, files, comment)
    print(f"{len(suite.steps)} steps recorded ({skipped} skipped): {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
