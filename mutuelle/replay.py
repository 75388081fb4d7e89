"""``python -m mutuelle.replay DIR``: play a suite against a target and say what changed.

Chains run side by side (``--concurrency``), the steps of one chain in order, each over its own
HTTPS connection with the establishment's certificate. A refused connection, a timeout or an
answer that is not SOAP is a difference of that step, not a crash. Exit status: 0 every step
matched, 1 some step differed, 2 a usage, configuration or connection error (message on
stderr): a suite that cannot be read, a certificate that cannot be loaded, a target or admin
endpoint that cannot be reached at all.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from cryptography import x509
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mutuelle.soap import request_headers
from mutuelle.suite_model import (
    Difference,
    Observed,
    Step,
    Suite,
    SuiteError,
    compare,
    load_suite,
    read_answer,
    substitute,
)
from roc.certificates import finess_from_certificate
from roc.model import Service, SoapVersion
from roc.signature import sign


class ReplayError(Exception):
    """Nothing can be played (exit 2): the message says which setting or endpoint."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how steps are sent."""

    #: ``{service}`` in a URL is replaced by the step's service (``/roc/{service}``).
    url: str
    billing_url: str
    context: ssl.SSLContext
    timeout: float
    signer: tuple[bytes, bytes] | None = None

    def url_for(self, service: Service) -> str:
        base = self.billing_url if service is Service.DRE else self.url
        return base.replace("{service}", service.value)


@dataclass(frozen=True, slots=True)
class Result:
    step: Step
    observed: Observed
    differences: list[Difference] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.differences


def post(target: Target, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One POST over a fresh TLS connection: (status, body); raises OSError or HTTPException."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection(
        parts.hostname or "", parts.port or 443, timeout=target.timeout, context=target.context
    )
    try:
        connection.request("POST", parts.path or "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


Sender = Callable[[Target, str, bytes, dict[str, str]], tuple[int, bytes]]


def play_chain(
    suite_dir: Path,
    chain: list[Step],
    target: Target,
    done: Callable[[Result], None],
    send: Sender = post,
) -> list[Result]:
    """Play *chain*'s steps in order, variables captured on the way."""
    variables: dict[str, str] = {}
    results = []
    for step in chain:
        started = time.monotonic()
        try:
            body = substitute((suite_dir / step.file).read_bytes(), variables, step.id)
            if step.sign:
                if target.signer is None:
                    raise SuiteError(f"step {step.id} is signed at replay: give --sign-cert")
                body = sign(body, *target.signer)
        except (SuiteError, ValueError, OSError) as e:
            observed = Observed(error=f"not sent: {e}")
        else:
            try:
                status, answer = send(
                    target,
                    target.url_for(step.service),
                    body,
                    request_headers(step.service, SoapVersion.SOAP11),
                )
            except TimeoutError:
                observed = Observed(error=f"no answer within {target.timeout:g} s")
            except (OSError, http.client.HTTPException) as e:
                observed = Observed(error=f"connection failed: {type(e).__name__}: {e}")
            else:
                observed = read_answer(status, answer, tuple(step.capture.values()))
        for name, element in step.capture.items():
            if element in observed.values:
                variables[name] = observed.values[element]
        result = Result(step, observed, compare(step.expect, observed), time.monotonic() - started)
        results.append(result)
        done(result)
    return results


def replay(
    suite_dir: Path,
    suite: Suite,
    target: Target,
    concurrency: int,
    done: Callable[[Result], None] = lambda _: None,
    send: Sender = post,
) -> list[Result]:
    """Every step's result, in manifest order."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [
            pool.submit(play_chain, suite_dir, chain, target, done, send)
            for chain in suite.chains()
        ]
        by_id = {r.step.id: r for f in futures for r in f.result()}
    return [by_id[step.id] for step in suite.steps]


# -- reports -----------------------------------------------------------------------------------


def junit_xml(suite: Suite, results: list[Result]) -> bytes:
    """JUnit XML (one testcase per step) as GitLab and Jenkins read it."""
    failures = sum(not r.passed for r in results)
    total = sum(r.elapsed for r in results)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    lines.append(
        f'<testsuites name={quoteattr(suite.name)} tests="{len(results)}" '
        f'failures="{failures}" errors="0" time="{total:.3f}">'
    )
    lines.append(
        f'  <testsuite name={quoteattr(suite.name)} tests="{len(results)}" '
        f'failures="{failures}" errors="0" skipped="0" time="{total:.3f}">'
    )
    for r in results:
        head = (
            f"    <testcase name={quoteattr(r.step.id)} "
            f"classname={quoteattr(suite.name + '.' + r.step.service.value)} "
            f'time="{r.elapsed:.3f}"'
        )
        if r.passed:
            lines.append(head + "/>")
            continue
        message = "; ".join(
            f"{d.what}: expected {d.expected}, got {d.observed}" for d in r.differences
        )
        lines.append(head + ">")
        lines.append(
            f'      <failure message={quoteattr(message)} type="difference">'
            f"{_text(message)}</failure>"
        )
        lines.append("    </testcase>")
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines).encode("utf-8")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def json_report(suite: Suite, results: list[Result]) -> dict[str, Any]:
    return {
        "suite": suite.name,
        "steps": len(results),
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "results": [
            {
                "step": r.step.id,
                "service": r.step.service.value,
                "passed": r.passed,
                "status": r.observed.status,
                "code": r.observed.code,
                "error": r.observed.error,
                "elapsed": round(r.elapsed, 3),
                "differences": [
                    {"what": d.what, "expected": d.expected, "observed": d.observed}
                    for d in r.differences
                ],
            }
            for r in results
        ],
    }


def differences_table(results: list[Result]) -> Table:
    table = Table(title="Differences", show_lines=False)
    for column in ("step", "what", "expected", "observed"):
        table.add_column(column, overflow="fold")
    for r in results:
        for d in r.differences:
            table.add_row(r.step.id, d.what, d.expected, d.observed)
    return table


# -- command line ------------------------------------------------------------------------------


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=args.cacert)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if args.cert is not None:
            context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as e:
        raise ReplayError(f"TLS settings: {e}") from None
    return context


def _signer(args: argparse.Namespace) -> tuple[bytes, bytes] | None:
    cert, key = args.sign_cert or args.cert, args.sign_key or args.key
    if cert is None or key is None:
        return None
    try:
        return Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as e:
        raise ReplayError(f"signing key: {e.filename}: {e.strerror}") from None


def _check_reachable(url: str, context: ssl.SSLContext, timeout: float) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ReplayError(f"{url}: not an https URL")
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname):
                pass
    except (OSError, ssl.SSLError) as e:
        raise ReplayError(f"cannot reach {url}: {e}") from None


def reset_sandbox(admin: str, sandbox: str, timeout: float) -> None:
    """``POST <admin>/__admin/sandboxes/<sandbox>/reset``: the sandbox back to its seed."""
    parts = urllib.parse.urlsplit(admin)
    if parts.scheme != "http" or not parts.hostname:
        raise ReplayError(f"--admin {admin}: not an http URL")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    path = (
        parts.path.rstrip("/") + f"/__admin/sandboxes/{urllib.parse.quote(sandbox, safe='/')}/reset"
    )
    try:
        connection.request("POST", path)
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as e:
        raise ReplayError(f"--admin {admin}: cannot reset sandbox {sandbox}: {e}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise ReplayError(f"--admin {admin}: reset of sandbox {sandbox} answered {response.status}")


def _sandbox_of(args: argparse.Namespace) -> str:
    if args.sandbox:
        return str(args.sandbox)
    if args.cert is None:
        raise ReplayError("--sandbox-reset needs --sandbox or a client --cert naming a FINESS")
    try:
        cert = x509.load_pem_x509_certificate(Path(args.cert).read_bytes())
    except (OSError, ValueError) as e:
        raise ReplayError(f"--cert {args.cert}: {e}") from None
    finess = finess_from_certificate(cert)
    if finess is None:
        raise ReplayError(f"--cert {args.cert} names no FINESS: give --sandbox")
    return finess


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mutuelle.replay",
        description="Play a suite against the relay or the simulator; exit 0 if all matched, "
        "1 on any difference, 2 on a usage, configuration or connection error.",
    )
    p.add_argument("suite", type=Path, help="the suite's directory (suite.toml)")
    p.add_argument(
        "--url", required=True, help="https URL steps are posted to ({service} replaced)"
    )
    p.add_argument(
        "--billing-url", help="URL for DRE steps (billing is not relayed); default --url"
    )
    p.add_argument("--cert", help="client certificate (PEM)")
    p.add_argument("--key", help="its private key (PEM)")
    p.add_argument("--cacert", help="CA certificates to trust (PEM)")
    p.add_argument("--sign-cert", help="certificate signing 'sign = true' steps (default --cert)")
    p.add_argument("--sign-key", help="its private key (default --key)")
    p.add_argument("--concurrency", type=int, default=1, help="chains played at once (default 1)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per step (default 15)")
    p.add_argument("--admin", help="the simulator's admin URL (http://127.0.0.1:9181)")
    p.add_argument("--sandbox-reset", action="store_true", help="reset the sandbox first")
    p.add_argument("--sandbox", help="the sandbox to reset (default: the --cert's FINESS)")
    p.add_argument("--junit", type=Path, help="write a JUnit XML report")
    p.add_argument("--json", type=Path, help="write a JSON report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.concurrency < 1:
        p.error("--concurrency must be at least 1")
    if args.timeout <= 0:
        p.error("--timeout must be > 0")
    if (args.cert is None) != (args.key is None):
        p.error("--cert and --key go together")
    if args.sandbox_reset and not args.admin:
        p.error("--sandbox-reset needs --admin URL")
    console = Console(stderr=True)
    try:
        suite = load_suite(args.suite)
        context = _context(args)
        target = Target(
            args.url, args.billing_url or args.url, context, args.timeout, _signer(args)
        )
        for url in {target.url_for(Service.IDB), target.url_for(Service.DRE)}:
            _check_reachable(url, context, args.timeout)
        if args.sandbox_reset:
            reset_sandbox(args.admin, _sandbox_of(args), args.timeout)
    except (SuiteError, ReplayError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with Progress(console=console, disable=args.quiet, transient=False) as progress:
        task = progress.add_task(suite.name, total=len(suite.steps))
        results = replay(
            args.suite, suite, target, args.concurrency, lambda _: progress.advance(task)
        )
    failed = [r for r in results if not r.passed]
    out = Console()
    if not out.is_terminal:  # a CI log: never fold a step's name
        out = Console(width=240)
    if failed:
        out.print(differences_table(failed))
    out.print(f"{len(results) - len(failed)} of {len(results)} steps matched", highlight=False)
    try:
        if args.junit is not None:
            args.junit.write_bytes(junit_xml(suite, results))
        if args.json is not None:
            args.json.write_text(
                json.dumps(json_report(suite, results), indent=2, ensure_ascii=False)
            )
    except OSError as e:
        print(f"error: cannot write the report: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
