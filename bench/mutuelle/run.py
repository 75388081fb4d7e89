"""Mutuelle ANS against WireMock, and its three storages side by side: answers per second on
one core, keep-alive, same run.

    .venv/bin/python bench/mutuelle/run.py [--duration 10] [--rounds 3] [--connections 32]

Needs ``wrk`` (``apt-get install wrk``), Java 11+, WireMock's standalone jar from the npm
package (``npm ci --prefix bench/mutuelle``) and PostgreSQL 15 (``make system-deps``). Each
server is pinned to CPU 0 (WireMock's JVM told it has one processor; PostgreSQL's processes
with the simulator using it) and ``wrk`` to CPU 1; all serve plain HTTP on loopback.

- **Mutuelle ANS**, three processes: sandboxes in memory (``storage.url = "memory:"``), in
  SQLite (the default) and in a PostgreSQL server started here (``synchronous_commit=off``,
  as durable as SQLite's WAL with ``synchronous=NORMAL``). Each computes every answer:
  envelope and routing checks, XSD validation, the rules on the fictitious data, conformance
  report, the exchange's transaction (journal line, counters, identification), catalogue
  match. **IDB**: one IDB, sent again and again (a read of the data, an identification
  upserted). **CLC**: one CLC, sent again and again; the first makes the engagement, every
  other is a retry answered 00 with it (identifications and engagements read, journal line
  and counters written, in one transaction).
- **Mutuelle ANS, signatures checked**: a fourth process (sandboxes in memory) with
  ``[signatures] policy = "require"``, sent the same IDB signed (WS-Security,
  ``roc.signature``, the bench PKI's hospital A certificate): everything the memory one does
  plus the XML-signature check (canonicalisation, two digests, RSA-SHA256, chain of trust,
  FINESS); the script first checks that it refuses the unsigned IDB (400), so the check is on.
- **WireMock** serves one canned IDB answer (the simulator's own, for the same request) from a
  stub matching the path, the SOAPAction header and the beneficiary's NIR by XPath; request
  journal off (its fastest setting).

Rounds alternate between the servers; the medians, the ratios to WireMock (IDB) and the cost
of checking signatures (signed / unsigned, memory storage) are printed. Per CPU-second
counts the simulator's process plus PostgreSQL's. Results are also written to
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
from tests.integration.postgres import PostgresServer  # noqa: E402

CASE = ("990000101", "IDB_OK_MCO_DROITS_OUVERTS")
CLC_CASE = ("990000101", "CLC_OK_MCO_ENGAGEMENT")
STORAGES = ("memory", "sqlite", "postgresql")
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


def post(port: int, body: bytes, headers: dict[str, str], path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def lua_script(directory: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    script = directory / f"{name}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    return script


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(parent: int) -> float:
    """CPU time of *parent* and of its living children (PostgreSQL's backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == parent or int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_wrk(
    port: int, script: Path, duration: float, connections: int, path: str
) -> tuple[float, int, int]:
    """Requests per second, requests done and failures, wrk pinned to CPU 1."""
    done = subprocess.run(
        [
            "taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
            "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{path}",
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
    directory: Path, plain: int, name: str, storage_url: str, policy: str = "off"
) -> subprocess.Popen[bytes]:
    pki = directory / "pki"
    from tools import devpki

    devpki.ensure(pki)
    tls, admin = free_port(), free_port()
    config = directory / f"mutuelle-{name}.toml"
    config.write_text(
        f'public_url = "https://127.0.0.1:{tls}"\n'
        f'[listen]\nendpoint = "tcp:{tls}:interface=127.0.0.1"\n'
        f'[plain]\nendpoint = "tcp:{plain}:interface=127.0.0.1"\n'
        f'[admin]\nendpoint = "tcp:{admin}:interface=127.0.0.1"\n'
        f'[tls]\ncertificate = "{pki}/mutuelle-server.pem"\n'
        f'private_key = "{pki}/mutuelle-server.key"\nca_certificates = ["{pki}/ca.pem"]\n'
        f'[storage]\nurl = "{storage_url}"\n'
        f'[signatures]\npolicy = "{policy}"\n'
    )
    twistd = Path(sys.executable).parent / "twistd"
    process = subprocess.Popen(
        ["taskset", "-c", "0", str(twistd), "-n", "--pidfile=", "--logfile",
         str(directory / f"mutuelle-{name}.log"), "mutuelle", "--config", str(config)],
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


def start_postgresql() -> tuple[PostgresServer, str]:
    """A PostgreSQL server pinned to CPU 0, as durable as SQLite in WAL mode; its database URL."""
    server = PostgresServer(cpu="0", settings={"synchronous_commit": "off"})
    server.init().start()
    return server, server.create_database("bench")


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

    catalogue = default_catalogue()
    idb_case, clc_case = catalogue.get(*CASE), catalogue.get(*CLC_CASE)
    assert idb_case is not None and clc_case is not None
    bodies = {
        "IDB": case_request(idb_case, "bench-idb"),
        "CLC": case_request(clc_case, "bench-clc"),
    }
    headers = {
        "IDB": request_headers(Service.IDB, SoapVersion.SOAP11),
        "CLC": request_headers(Service.CLC, SoapVersion.SOAP11),
    }
    expected = testing.post(testing.site(), "/roc/IDB", bodies["IDB"], headers["IDB"]).body

    # (server, request) pairs measured each round, in this order.
    targets = [(storage, "IDB") for storage in STORAGES] + [("wiremock", "IDB")]
    targets += [("signed", "IDB-signed")]
    targets += [(storage, "CLC") for storage in STORAGES]
    paths = {"IDB": "/roc/IDB", "IDB-signed": "/roc/IDB", "CLC": "/roc/CLC"}
    headers["IDB-signed"] = headers["IDB"]
    rates: dict[str, list[float]] = {f"{n} {s}": [] for n, s in targets}
    per_cpu: dict[str, list[float]] = {f"{n} {s}": [] for n, s in targets}
    pg, pg_url = start_postgresql()
    with tempfile.TemporaryDirectory(prefix="bench-mutuelle-") as tmp:
        directory = Path(tmp)
        from tools import devpki

        pki = directory / "pki"
        devpki.ensure(pki)
        bodies["IDB-signed"] = sign(
            bodies["IDB"],
            (pki / "hospital-a.pem").read_bytes(),
            (pki / "hospital-a.key").read_bytes(),
        )
        scripts = {
            service: lua_script(directory, service, bodies[service], headers[service])
            for service in bodies
        }
        urls = {
            "memory": "memory:",
            "sqlite": f"sqlite:///{directory}/sandboxes.sqlite3",
            "postgresql": pg_url,
        }
        ports = {name: free_port() for name in (*STORAGES, "signed", "wiremock")}
        servers: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for storage in STORAGES:
                servers[storage] = start_mutuelle(directory, ports[storage], storage, urls[storage])
            servers["signed"] = start_mutuelle(
                directory, ports["signed"], "signed", "memory:", policy="require"
            )
            status, _ = post(ports["signed"], bodies["IDB"], headers["IDB"], "/roc/IDB")
            if status != 400:
                raise SystemExit(f"signatures are not checked: the unsigned IDB got {status}")
            servers["wiremock"] = start_wiremock(
                directory, ports["wiremock"], jars[-1], idb_case.request.beneficiary.nir, expected
            )
            for name, service in targets:
                status, answer = post(
                    ports[name], bodies[service], headers[service], paths[service]
                )
                if status != 200 or b"CodeRetour>00</" not in answer:
                    code = re.findall(rb"CodeRetour>([^<]*)<|<Code>([^<]*)<", answer)
                    raise SystemExit(f"{name} does not answer the {service} case: {status} {code}")
                run_wrk(
                    ports[name], scripts[service], args.warmup, args.connections, paths[service]
                )
            for round_number in range(args.rounds):
                for name, service in targets:
                    pid = servers[name].pid
                    pg_pid = pg.pid if name == "postgresql" else None
                    before = cpu_seconds(pid)
                    before += children_cpu_seconds(pg_pid) if pg_pid else 0.0
                    rate, done, bad = run_wrk(
                        ports[name],
                        scripts[service],
                        args.duration,
                        args.connections,
                        paths[service],
                    )
                    used = cpu_seconds(pid) - before
                    used += children_cpu_seconds(pg_pid) if pg_pid else 0.0
                    if bad > done / 100:
                        raise SystemExit(f"{name}: {bad} failed {service} in round {round_number}")
                    key = f"{name} {service}"
                    rates[key].append(rate)
                    per_cpu[key].append(done / used if used > 0 else 0.0)
                    failed = f"   ({bad} failed or timed out)" if bad else ""
                    print(
                        f"round {round_number + 1} {key:<15} {rate:>8.0f} answers/s   "
                        f"{per_cpu[key][-1]:>8.0f} per CPU-second{failed}",
                        flush=True,
                    )
        finally:
            for process in servers.values():
                stop(process)
            pg.remove()
    medians = {key: statistics.median(values) for key, values in rates.items()}
    cpu_medians = {key: statistics.median(values) for key, values in per_cpu.items()}
    wiremock, wiremock_cpu = medians["wiremock IDB"], cpu_medians["wiremock IDB"]
    print()
    print(f"{'Mutuelle ANS storage':<22}{'IDB/s':>9}{'CLC/s':>9}{'IDB/CPU-s':>11}{'CLC/CPU-s':>11}"
          f"{'IDB vs WireMock':>17}")  # fmt: skip
    for storage in STORAGES:
        idb, clc = f"{storage} IDB", f"{storage} CLC"
        print(
            f"{storage:<22}{medians[idb]:>9.0f}{medians[clc]:>9.0f}{cpu_medians[idb]:>11.0f}"
            f"{cpu_medians[clc]:>11.0f}{medians[idb] / wiremock:>17.2f}"
        )
    print(f"{'WireMock (canned IDB)':<22}{wiremock:>9.0f}{'':>9}{wiremock_cpu:>11.0f}")
    ratio = medians["sqlite IDB"] / wiremock
    cpu_ratio = cpu_medians["sqlite IDB"] / wiremock_cpu
    print(f"\nratio Mutuelle ANS (SQLite) / WireMock, IDB/s on one core: {ratio:.2f} (goal: > 1)")
    print(f"ratio Mutuelle ANS (SQLite) / WireMock, IDB per CPU-second: {cpu_ratio:.2f}")
    signed_ratio = medians["signed IDB-signed"] / medians["memory IDB"]
    signed_cpu_ratio = cpu_medians["signed IDB-signed"] / cpu_medians["memory IDB"]
    cost = 1e6 / cpu_medians["signed IDB-signed"] - 1e6 / cpu_medians["memory IDB"]
    print(
        f"signatures checked / off (memory storage): {signed_ratio:.2f} of the IDB/s, "
        f"{signed_cpu_ratio:.2f} of the IDB per CPU-second "
        f"(about {cost:.0f} us of CPU per signature check)"
    )
    print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            {
                "rounds": rates,
                "medians": medians,
                "ratio_sqlite_idb_to_wiremock": ratio,
                "signed_over_unsigned": signed_ratio,
                "signed_over_unsigned_per_cpu_second": signed_cpu_ratio,
                "per_cpu_second": per_cpu,
                "per_cpu_second_medians": cpu_medians,
                "per_cpu_second_ratio_sqlite_idb_to_wiremock": cpu_ratio,
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
