"""Mutuelle ANS against WireMock: IDB answers per second on one core, keep-alive, same run.

    .venv/bin/python bench/mutuelle/run.py [--duration 10] [--rounds 3] [--connections 32]

Needs ``wrk`` (``apt-get install wrk``), Java 11+, and WireMock's standalone jar from the npm
package (``npm ci --prefix bench/mutuelle``). Each server is pinned to CPU 0 (WireMock's JVM
told it has one processor) and ``wrk`` to CPU 1; both serve plain HTTP on loopback.

- **Mutuelle ANS** computes every answer: envelope and routing checks, XSD validation, the IDB
  rules on the fictitious data, conformance report, sandbox journal, catalogue match.
- **WireMock** serves one canned IDB answer (the simulator's own, for the same request) from a
  stub matching the path, the SOAPAction header and the beneficiary's NIR by XPath; request
  journal off (its fastest setting).

- **Mutuelle ANS, signatures checked**: a second simulator with ``[signatures] policy =
  "require"`` answering the same request signed (WS-Security, ``roc.signature``) with the
  bench PKI's hospital A certificate: everything above plus the XML-signature check
  (canonicalisation, two digests, RSA-SHA256, chain of trust, FINESS).

Rounds alternate between the servers; the medians and their ratios are printed, among them
the cost of checking signatures (signed / unsigned). Results are also written to
``bench/mutuelle/results/latest.json``. Never run as a timed unit test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from mutuelle import testing  # noqa: E402
from mutuelle.catalogue import default_catalogue  # noqa: E402
from mutuelle.examples import case_request  # noqa: E402
from mutuelle.soap import request_headers  # noqa: E402
from roc.model import Service, SoapVersion  # noqa: E402
from roc.signature import sign  # noqa: E402

CASE = ("990000101", "IDB_OK_MCO_DROITS_OUVERTS")
JAR_GLOB = "node_modules/wiremock/build/wiremock-standalone-*.jar"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answers on port {port} after {timeout} s")


def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/roc/IDB", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def lua_script(directory: Path, body: bytes, headers: dict[str, str]) -> Path:
    script = directory / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    return script


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(port: int, script: Path, duration: float, connections: int) -> tuple[float, int, int]:
    """Requests per second, requests done and failures, wrk pinned to CPU 1."""
    done = subprocess.run(
        [
            "taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
            "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/roc/IDB",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    total = re.search(r"(\d+) requests in", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    socket_errors = re.search(r"Socket errors:.*", done.stdout)
    if rate is None or total is None:
        raise SystemExit(f"wrk output not understood:\n{done.stdout}\n{done.stderr}")
    bad = int(errors.group(1)) if errors else 0
    if socket_errors:
        bad += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return float(rate.group(1)), int(total.group(1)), bad


def start_mutuelle(
    directory: Path, plain: int, policy: str = "off", name: str = "mutuelle"
) -> subprocess.Popen[bytes]:
    pki = directory / "pki"
    from tools import devpki

    devpki.ensure(pki)
    tls, admin = free_port(), free_port()
    config = directory / f"{name}.toml"
    config.write_text(
        f'public_url = "https://127.0.0.1:{tls}"\n'
        f'[listen]\nendpoint = "tcp:{tls}:interface=127.0.0.1"\n'
        f'[plain]\nendpoint = "tcp:{plain}:interface=127.0.0.1"\n'
        f'[admin]\nendpoint = "tcp:{admin}:interface=127.0.0.1"\n'
        f'[tls]\ncertificate = "{pki}/mutuelle-server.pem"\n'
        f'private_key = "{pki}/mutuelle-server.key"\nca_certificates = ["{pki}/ca.pem"]\n'
        f'[signatures]\npolicy = "{policy}"\n'
    )
    twistd = Path(sys.executable).parent / "twistd"
    process = subprocess.Popen(
        ["taskset", "-c", "0", str(twistd), "-n", "--pidfile=", "--logfile",
         str(directory / f"{name}.log"), "mutuelle", "--config", str(config)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_http(admin, "/healthz")
    return process


def start_wiremock(directory: Path, port: int, jar: Path, nir: str, answer: bytes) -> Any:
    root = directory / "wiremock"
    (root / "mappings").mkdir(parents=True)
    (root / "__files").mkdir()
    (root / "__files" / "idb.xml").write_bytes(answer)
    stub = {
        "request": {
            "method": "POST",
            "url": "/roc/IDB",
            "headers": {"SOAPAction": {"equalTo": '"urn:piano:roc:IDB"'}},
            "bodyPatterns": [
                {
                    "matchesXPath": f"//idb:Beneficiaire/idb:NIR[text()='{nir}']",
                    "xPathNamespaces": {"idb": "urn:piano:roc:idb:v1"},
                }
            ],
        },
        "response": {
            "status": 200,
            "headers": {"Content-Type": "text/xml; charset=utf-8"},
            "bodyFileName": "idb.xml",
        },
    }
    (root / "mappings" / "idb.json").write_text(json.dumps(stub, indent=1))
    process = subprocess.Popen(
        ["taskset", "-c", "0", "java", "-XX:ActiveProcessorCount=1", "-jar", str(jar),
         "--port", str(port), "--root-dir", str(root), "--no-request-journal",
         "--disable-banner", "--disable-request-logging"],
        stdout=(directory / "wiremock.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_http(port, "/__admin/mappings")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    for tool in ("wrk", "java", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required (see bench/mutuelle/run.py's docstring)")
    jars = sorted(HERE.glob(JAR_GLOB))
    if not jars:
        raise SystemExit("WireMock missing: npm ci --prefix bench/mutuelle")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two CPUs: one for the server, one for wrk")

    case = default_catalogue().get(*CASE)
    assert case is not None
    body = case_request(case, "bench-idb")
    headers = request_headers(Service.IDB, SoapVersion.SOAP11)
    expected = testing.post(testing.site(), "/roc/IDB", body, headers).body

    names = ("mutuelle", "signed", "wiremock")
    results: dict[str, list[float]] = {name: [] for name in names}
    per_cpu: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-mutuelle-") as tmp:
        directory = Path(tmp)
        mutuelle_port, signed_port, wiremock_port = free_port(), free_port(), free_port()
        ports = {"mutuelle": mutuelle_port, "signed": signed_port, "wiremock": wiremock_port}
        servers: dict[str, Any] = {}
        try:
            # Started inside the try: a failure stops whatever had started.
            servers["mutuelle"] = start_mutuelle(directory, mutuelle_port)
            servers["signed"] = start_mutuelle(directory, signed_port, "require", "mutuelle-signed")
            servers["wiremock"] = start_wiremock(
                directory, wiremock_port, jars[-1], case.request.beneficiary.nir, expected
            )
            pki = directory / "pki"
            signed_body = sign(
                body, (pki / "hospital-a.pem").read_bytes(), (pki / "hospital-a.key").read_bytes()
            )
            bodies = {"mutuelle": body, "signed": signed_body, "wiremock": body}
            scripts = {}
            for name, sent in bodies.items():
                (directory / f"script-{name}").mkdir()
                scripts[name] = lua_script(directory / f"script-{name}", sent, headers)
            for name, port in ports.items():
                if name == "signed":
                    status, _ = post(port, body, headers)  # unsigned: refused, so checked
                    if status != 400:
                        raise SystemExit(f"signatures are not checked: unsigned got {status}")
                script = scripts[name]
                status, answer = post(port, bodies[name], headers)
                if status != 200 or b"<idb:CodeRetour>00</idb:CodeRetour>" not in answer:
                    raise SystemExit(f"{name} does not answer the IDB case: {status}")
                run_wrk(port, script, args.warmup, args.connections)  # JIT, caches, pools
            for round_number in range(args.rounds):
                for name, port in ports.items():
                    pid = servers[name].pid
                    before = cpu_seconds(pid)
                    rate, done, bad = run_wrk(port, scripts[name], args.duration, args.connections)
                    used = cpu_seconds(pid) - before
                    if bad:
                        raise SystemExit(f"{name}: {bad} failed requests in round {round_number}")
                    results[name].append(rate)
                    per_cpu[name].append(done / used if used > 0 else 0.0)
                    print(
                        f"round {round_number + 1} {name:<9} {rate:>8.0f} IDB/s   "
                        f"{per_cpu[name][-1]:>8.0f} IDB per CPU-second",
                        flush=True,
                    )
        finally:
            for process in servers.values():
                stop(process)
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    cpu_medians = {name: statistics.median(rates) for name, rates in per_cpu.items()}
    ratio = medians["mutuelle"] / medians["wiremock"]
    cpu_ratio = cpu_medians["mutuelle"] / cpu_medians["wiremock"]
    signed_ratio = medians["signed"] / medians["mutuelle"]
    signed_cpu_ratio = cpu_medians["signed"] / cpu_medians["mutuelle"]
    labels = {
        "mutuelle": "Mutuelle ANS, signatures off",
        "signed": "Mutuelle ANS, signatures checked",
        "wiremock": "WireMock (one canned answer)",
    }
    print()
    print(f"{'server':<34}{'median IDB/s':>14}{'IDB per CPU-s':>15}   rounds (IDB/s)")
    for name, label in labels.items():
        rounds = ", ".join(f"{r:.0f}" for r in results[name])
        print(f"{label:<34}{medians[name]:>14.0f}{cpu_medians[name]:>15.0f}   {rounds}")
    print(f"\nratio Mutuelle ANS / WireMock, IDB/s on one core: {ratio:.2f} (goal: >= 1.00)")
    print(f"ratio Mutuelle ANS / WireMock, IDB per CPU-second: {cpu_ratio:.2f}")
    cost = 1e6 / cpu_medians["signed"] - 1e6 / cpu_medians["mutuelle"]
    print(
        f"signatures checked / off: {signed_ratio:.2f} of the IDB/s, {signed_cpu_ratio:.2f} "
        f"of the IDB per CPU-second (about {cost:.0f} us of CPU per signature check)"
    )
    print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            {
                "rounds": results,
                "medians": medians,
                "ratio": ratio,
                "signed_over_unsigned": signed_ratio,
                "signed_over_unsigned_per_cpu_second": signed_cpu_ratio,
                "per_cpu_second": per_cpu,
                "per_cpu_second_medians": cpu_medians,
                "per_cpu_second_ratio": cpu_ratio,
                "load_average": os.getloadavg()[0],
                "duration": args.duration,
                "connections": args.connections,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
