"""``make demo``: Mutuelle ANS and the relay on loopback, one exchange per case through the relay.

Starts both twistd plugins with the development configuration (etc/dev/) and the development
PKI (.dev/pki/, generated if missing), sends every business case of the catalogue through the
relay with hospital A's certificate, each request signed (WS-Security) with hospital A's
certificate, then the signature cases (each signature broken one way, refused by Mutuelle ANS,
which requires signatures in the development configuration), then billing straight to the
simulator (every DRE case of one AMC, and one stay from IDB to its 578R payment, the relay
refusing the same invoice with RPN-400-DRE), prints one line per exchange,
then keeps both services running until Ctrl-C (or exits at once with --once, as the
integration test does).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import FrameType

from lxml import etree

from mutuelle.billing import Invoice
from mutuelle.billing_codec import invoice_element, returns_request_element
from mutuelle.catalogue import default_catalogue
from mutuelle.examples import billing_request, case_request
from mutuelle.faults import MutuelleError
from roc.messages import Routing, envelope
from roc.model import Service
from tools import devpki
from tools.signing import Signers, signed_as

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / ".dev"
PKI = DEV / "pki"
#: Ports of etc/dev/: relay, relay admin, simulator, simulator admin, the unreachable AMC.
PORTS = (8443, 9180, 8444, 9181, 8449)
UNREACHABLE_AMC = "990000404"


def _configs(offset: int) -> tuple[Path, Path]:
    """The etc/dev configurations, with every port moved by *offset* (written to .dev/demo)."""
    out = DEV / "demo"
    out.mkdir(parents=True, exist_ok=True)

    def shift(text: str) -> str:
        return re.sub(
            r"\b(" + "|".join(map(str, PORTS)) + r")\b",
            lambda m: str(int(m.group(1)) + offset),
            text,
        )

    for name in ("rpn.toml", "mutuelle.toml", "annuaire.toml"):
        (out / name).write_text(shift((ROOT / "etc" / "dev" / name).read_text()))
    return out / "mutuelle.toml", out / "rpn.toml"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start(plugin: str, config: Path) -> subprocess.Popen[bytes]:
    log = DEV / "logs" / f"{plugin}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "twistd"),
            "-n",
            "--pidfile=",
            "--logfile",
            str(log),
            plugin,
            "--config",
            str(config),
        ],
        cwd=ROOT,
        stdout=log.with_suffix(".out").open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(process: subprocess.Popen[bytes], port: int, path: str, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} stopped at start-up: see .dev/logs/{name}.log and {name}.out")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} not ready after 30 s: see .dev/logs/{name}.log")


def _text(body: bytes, name: str) -> str:
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return ""
    found = root.xpath(f"//*[local-name()='{name}']/text()")
    return str(found[0]) if isinstance(found, list) and found else ""


def _send(
    relay_port: int, context: ssl.SSLContext, body: bytes, path: str = "/roc"
) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", relay_port, context=context, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def reset_sandboxes(mutuelle_admin: int) -> None:
    """Hospital A's sandboxes back to their seed: the simulator keeps them across runs (SQLite),
    and the demo plays every case as on a fresh sandbox (a DEL case cancels an engagement)."""
    for finess in sorted({devpki.HOSPITAL_A["site"], devpki.HOSPITAL_A["legal"]}):
        conn = http.client.HTTPConnection("127.0.0.1", mutuelle_admin, timeout=30)
        try:
            conn.request("POST", f"/__admin/sandboxes/{finess}/reset")
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise SystemExit(f"cannot reset sandbox {finess}: HTTP {response.status}")


def _admin_post(mutuelle_admin: int, path: str) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", mutuelle_admin, timeout=30)
    try:
        conn.request("POST", "/__admin/" + path)
        response = conn.getresponse()
        answer: dict[str, object] = json.loads(response.read())
        return answer
    finally:
        conn.close()


def billing(relay_port: int, mutuelle_port: int, mutuelle_admin: int) -> int:
    """Billing, straight to Mutuelle ANS (never through the relay): every DRE case of one AMC,
    then one whole stay through to its payment, and the relay refusing the same invoice."""
    context = ssl.create_default_context(cafile=str(PKI / "ca.pem"))
    context.load_cert_chain(str(PKI / "hospital-a.pem"), str(PKI / "hospital-a.key"))
    signers = Signers.from_directory(PKI)
    catalogue = default_catalogue()
    shown, wrong = "990000101", 0
    whole = catalogue.get(shown, "DRE_OK_MCO_SEJOUR_COMPLET")
    assert whole is not None and isinstance(whole.request, Invoice)
    print(
        "\nOne stay from IDB to payment (IDB, SIM, CLC through the relay; billing straight to "
        f"Mutuelle ANS, https://127.0.0.1:{mutuelle_port}/roc/DRE):\n"
    )
    invoice = whole.request
    for service, step in whole.steps:
        played = dataclasses.replace(
            whole, spec=dataclasses.replace(whole.spec, service=service), request=step
        )
        request = signed_as(case_request(played, str(uuid.uuid4())), None, signers)
        status, body = _send(relay_port, context, request)
        code = _text(body, "CodeRetour")
        wrong += not (status == 200 and code == "00")
        number = _text(body, "NumeroEngagement")
        extra = f" NumeroEngagement {number}" if number else ""
        print(f"  {service.value} via the relay: HTTP {status} {code}{extra}")
        if service is Service.CLC:
            invoice = dataclasses.replace(invoice, engagement_number=number)
    document = billing_request(invoice_element(invoice), shown, whole.version, str(uuid.uuid4()))
    status, body = _send(mutuelle_port, context, signed_as(document, None, signers), "/roc/DRE")
    code = _text(body, "CodeRetour")
    wrong += code != "00"
    print(f"  DRE-ES {invoice.invoice_number} direct: HTTP {status} ARL {code} "
          f"{_text(body, 'LibelleRetour')}")  # fmt: skip
    released = _admin_post(mutuelle_admin, f"sandboxes/{devpki.HOSPITAL_A['site']}/returns")
    print(f"  admin: produce returns now -> {released.get('released')} return(s) due")
    poll = billing_request(returns_request_element(), shown, whole.version, str(uuid.uuid4()))
    status, body = _send(mutuelle_port, context, signed_as(poll, None, signers), "/roc/DRE")
    kind, paid = _text(body, "Type"), _text(body, "MontantPaye")
    wrong += kind != "578R"
    print(
        f"  DemandeRetours: HTTP {status} {kind} {_text(body, 'ReferencePaiement')} paid "
        f"{paid} EUR of {_text(body, 'MontantDemande')} (in full: {_text(body, 'Integral')})"
    )
    ack = billing_request(
        returns_request_element([invoice.invoice_number]), shown, whole.version, str(uuid.uuid4())
    )
    status, body = _send(mutuelle_port, context, signed_as(ack, None, signers), "/roc/DRE")
    print(
        f"  DemandeRetours acknowledging it: HTTP {status}, {_text(body, 'Acquittes')} acknowledged"
    )
    status, body = _send(relay_port, context, signed_as(document, None, signers))
    code = _text(body, "Code")
    wrong += code != "RPN-400-DRE"
    print(f"  the same DRE-ES through the relay: HTTP {status} {code} (billing is never relayed)")
    print(f"\nEvery billing case, straight to Mutuelle ANS (/roc/DRE, {shown}):\n")
    for case in catalogue:
        if case.service is not Service.DRE or case.steps or case.amc_number != shown:
            continue
        request = signed_as(case_request(case, str(uuid.uuid4())), None, signers)
        status, body = _send(mutuelle_port, context, request, "/roc/DRE")
        code = _text(body, "CodeRetour")
        ok = status == 200 and code == case.expected_code
        wrong += not ok
        after = case.expected_return
        then = "" if after is None else f" -> {after.kind.value} to come"
        print(
            f"  {'ok ' if ok else 'BAD'} {case.amc_number} {case.name:<44} HTTP {status} ARL "
            f"{code} {_text(body, 'LibelleRetour')}{then}"
        )
    return wrong


def exchanges(relay_port: int) -> int:
    """Send one exchange per catalogue case (and two refusals); return how many went wrong."""
    context = ssl.create_default_context(cafile=str(PKI / "ca.pem"))
    context.load_cert_chain(str(PKI / "hospital-a.pem"), str(PKI / "hospital-a.key"))
    wrong = 0
    print(f"\nExchanges through the relay (https://127.0.0.1:{relay_port}/roc, hospital A):\n")
    shown = "990000101"  # every case of one AMC on its own line; the others summed up
    summary: dict[str, list[int]] = {}
    signers = Signers.from_directory(PKI)
    catalogue = default_catalogue()
    for case in catalogue:
        if case.service is Service.DRE:  # billing never goes through the relay: below
            continue
        request = signed_as(case_request(case, str(uuid.uuid4())), None, signers)
        status, body = _send(relay_port, context, request)
        code, label = _text(body, "CodeRetour"), _text(body, "LibelleRetour")
        ok = status == 200 and code == case.expected_code
        wrong += not ok
        if case.amc_number == shown or not ok:
            print(
                f"  {'ok ' if ok else 'BAD'} {case.amc_number} {case.name:<44} HTTP {status} "
                f"{code} {label or _text(body, 'Code')}"
            )
        else:
            tally = summary.setdefault(case.amc_number, [0, 0])
            tally[0] += 1
            tally[1] += ok
    for amc, (played, as_documented) in sorted(summary.items()):
        print(
            f"  {'ok ' if played == as_documented else 'BAD'} {amc} {played} more cases, "
            f"{as_documented} with their documented answer"
        )
    print("\nSignatures Mutuelle ANS refuses (signatures.policy = require):\n")
    for case in catalogue.signature:
        if case.amc_number != shown or case.spec.signature is None:
            continue
        defect = case.spec.signature
        request = signed_as(case_request(case, str(uuid.uuid4())), defect, signers)
        status, body = _send(relay_port, context, request)
        code, message = _text(body, "Code"), _text(body, "Message")
        ok = code == MutuelleError.SIGNATURE_INVALID.code and f"[{defect.value}]" in message
        wrong += not ok
        print(f"  {'ok ' if ok else 'BAD'} {case.amc_number} {case.name:<44} HTTP {status} {code}")
        if defect.value == "SIGNATURE_EMPREINTE":
            print(f"      « {message} »")
    print("\nRefused by the relay:\n")
    # Hospital B is in qualification (etc/dev/rpn.toml): a real AMC is refused with the step
    # that remains, while Mutuelle ANS's AMCs answer it.
    hospital_b = ssl.create_default_context(cafile=str(PKI / "ca.pem"))
    hospital_b.load_cert_chain(str(PKI / "hospital-b.pem"), str(PKI / "hospital-b.key"))
    refusals = [
        (
            "AMC unreachable",
            UNREACHABLE_AMC,
            devpki.HOSPITAL_A,
            context,
            "RPN-503-AMC-INDISPONIBLE",
        ),
        ("A speaking for B's site", "990000101", devpki.HOSPITAL_B, context, "RPN-403-EMETTEUR"),
        (
            "B in qualification",
            UNREACHABLE_AMC,
            devpki.HOSPITAL_B,
            hospital_b,
            "RPN-403-QUALIFICATION",
        ),
    ]
    for name, amc, sender, sent_with, expected in refusals:
        request = envelope(
            Routing("IDB", amc, sender["legal"], sender["site"]),
            '<i:DemandeIDB xmlns:i="urn:piano:roc:idb:v1"/>',
        )
        status, body = _send(relay_port, sent_with, request)
        code = _text(body, "Code")
        ok = code == expected
        wrong += not ok
        print(f"  {'ok ' if ok else 'BAD'} {amc} {'(' + name + ')':<44} HTTP {status} {code}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after sending the exchanges")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="move every demo port by this much (to run beside another demo)",
    )
    args = parser.parse_args(argv)
    relay_port, admin_port, mutuelle_port, mutuelle_admin, _ = (p + args.port_offset for p in PORTS)
    busy = [p + args.port_offset for p in PORTS[:4] if not _port_free(p + args.port_offset)]
    if busy:
        print(f"ports already in use: {busy}; stop the other demo or use --port-offset")
        return 2
    devpki.ensure(PKI)
    mutuelle_config, rpn_config = _configs(args.port_offset)
    processes = []
    try:
        mutuelle = _start("mutuelle", mutuelle_config)
        processes.append(mutuelle)
        _wait_ready(mutuelle, mutuelle_admin, "/healthz", "mutuelle")
        reset_sandboxes(mutuelle_admin)
        relay = _start("rpn", rpn_config)
        processes.append(relay)
        _wait_ready(relay, admin_port, "/readyz", "rpn")
        print(
            f"Mutuelle ANS (pid {mutuelle.pid}) and RPN ROC (pid {relay.pid}) are running; "
            "logs in .dev/logs/, access log in .dev/rpn-access.log"
        )
        wrong = exchanges(relay_port)
        wrong += billing(relay_port, mutuelle_port, mutuelle_admin)
        print(
            f"\n{'All' if not wrong else 'Not all'} exchanges gave their documented answer"
            f"{'' if not wrong else f' ({wrong} did not)'}."
        )
        if args.once:
            return 1 if wrong else 0
        print(
            "\nTry more (other cases: docs/catalogue.md, examples/):\n"
            f"  curl --cacert .dev/pki/ca.pem --cert .dev/pki/hospital-a.pem "
            f"--key .dev/pki/hospital-a.key \\\n"
            f"       -H 'Content-Type: text/xml; charset=utf-8' "
            f"--data-binary @examples/signed/idb-droits-ouverts.xml "
            f"https://127.0.0.1:{relay_port}/roc\n"
            f"  curl http://127.0.0.1:{admin_port}/metrics\n\nCtrl-C stops both services."
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("a service stopped unexpectedly: see .dev/logs/")
        return 1
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
