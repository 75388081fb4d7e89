"""PiANO's benchmark: the relay next to HAProxy and nginx, measured in the same run.

``python bench/run.py`` (what ``make bench`` runs) builds the Go load generator, writes a fresh
development PKI under a temporary directory, starts on 127.0.0.1 with free ports

- a back-end that is never the bottleneck: nginx serving a fixed 4 KB SOAP answer over mutual
  TLS (and, for the slow-AMC scenario, ``loadgen serve`` answering after 2 s);
- the relay (``twistd rpn``), HAProxy and nginx as equivalent mutual-TLS reverse proxies,
- the floor (``bench/floor.py``): the least a relay on Twisted and pyOpenSSL can do, a mutual-TLS
  byte pump over pooled upstream connections, with the relay's TLS settings,

pins the proxy under test to one core and everything else to the other(s), and measures each
peer in three modes: keep-alive, a new TLS connection per request with a full handshake
(``new-conn``), and a new connection per request that resumes its TLS session with the ticket
the peer gave (``resumed``; every peer issues tickets: nginx with a ticket key file, HAProxy by
default), interleaved and repeated (``--repeat``, 3 by default) so that a noisy machine hurts
every peer alike. The tables show the share of handshakes the peer resumed (the load generator
reads Go's ``ConnectionState().DidResume``), so a peer that stops resuming is seen. It then
runs the relay-only scenarios: added p99 latency at half the relay's maximum rate, one slow AMC
with 500 exchanges in flight, 10,000 idle client connections, ``/metrics`` scraped under load,
and the relay with 1 then 2 workers in each mode (``workers``: the scaling ratio per mode).

It prints one table per pass, the table of medians, and last the line of ratios
``relay/haproxy=… relay/nginx=… relay/direct=…`` (keep-alive throughput, medians). Every
process it starts is stopped at the end, and dies with it if it is killed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roc.messages import Routing, envelope  # noqa: E402
from tests.integration.harness import free_port, reserve_ports  # noqa: E402
from tools import devpki  # noqa: E402

FAST_AMC = "990000101"
SLOW_AMC = "990000202"
SERVICES = ("IDB", "SIM", "CLC", "DEL")
PEERS = ("direct", "haproxy", "nginx", "relay", "floor")
MODES = ("keep-alive", "new-conn", "resumed")
SOAP_HEADERS = ("Content-Type: text/xml; charset=utf-8", 'SOAPAction: "urn:piano:roc:IDB"')
PR_SET_PDEATHSIG = 1


# -- payloads ----------------------------------------------------------------------------


def padded(document: bytes, size: int) -> bytes:
    """*document* with an XML comment before its end so that it is *size* bytes long."""
    head, tail = document.rsplit(b"</soap:Envelope>", 1)
    filler = size - len(document) - len(b"<!---->")
    assert filler >= 0, "document already larger than the target size"
    return head + b"<!--" + b"x" * filler + b"-->" + b"</soap:Envelope>" + tail


def request_body(amc: str) -> bytes:
    """A 2 KB IDB request routed to *amc*, sent by hospital A."""
    routing = Routing("IDB", amc, devpki.HOSPITAL_A["legal"], devpki.HOSPITAL_A["site"])
    body = (
        '<idb:DemandeDroits xmlns:idb="urn:piano:roc:idb">'
        "<idb:Beneficiaire><idb:NIR>299999999999999</idb:NIR>"
        "<idb:DateNaissance>19800101</idb:DateNaissance></idb:Beneficiaire>"
        "</idb:DemandeDroits>"
    )
    return padded(envelope(routing, body), 2048)


def answer_body() -> bytes:
    """A fixed 4 KB SOAP answer (no quote or dollar sign: it goes into nginx's config)."""
    doc = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<soap:Body><idb:ReponseDroits xmlns:idb="urn:piano:roc:idb">'
        b"<idb:CodeRetour>00</idb:CodeRetour><idb:Statut>DROITS_OUVERTS</idb:Statut>"
        b"</idb:ReponseDroits></soap:Body>"
        b"</soap:Envelope>"
    )
    return padded(doc, 4096)


# -- processes ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the driver dies, so nothing outlives a killed run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Cores:
    """Which cores the proxy under test gets, and which the rest (load, back-end) gets."""

    proxy: str | None
    rest: str | None

    @classmethod
    def detect(cls, enabled: bool) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(str(cpus[0]), ",".join(str(c) for c in cpus[1:]))

    def wrap(self, cores: str | None, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", cores, *argv] if cores else list(argv)


class Processes:
    """Every process the driver started; all stopped (by PID) on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
        )
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.started)):
            self.stop(process)


def wait_tcp(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early (see its log)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} not listening on {port} after {timeout}s")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return int(response.status), bytes(response.read())


def rss_mb(pids: Sequence[int]) -> float:
    """Resident memory of *pids* in MB."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time used so far by *pids*."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """*pid* and its descendants (the relay's workers)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        for kid in kids:
            found += children(int(kid))
    return found


class CoreLoad:
    """Busy fraction of some cores between start() and stop(), from /proc/stat."""

    def __init__(self, cores: str | None) -> None:
        self.names = [f"cpu{c}" for c in cores.split(",")] if cores else ["cpu"]

    def _sample(self) -> tuple[int, int]:
        busy = total = 0
        for line in Path("/proc/stat").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] in self.names:
                values = [int(v) for v in parts[1:]]
                idle = values[3] + values[4]
                busy += sum(values[:8]) - idle
                total += sum(values[:8])
        return busy, total

    @contextmanager
    def measure(self) -> Iterator[Callable[[], float]]:
        b0, t0 = self._sample()
        result: list[float] = []
        yield lambda: result[0]
        b1, t1 = self._sample()
        result.append((b1 - b0) / max(1, t1 - t0))


# -- the bench ---------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    procs: Processes
    cores: Cores
    loadgen: Path = field(init=False)
    ports: dict[str, int] = field(default_factory=dict)
    peer_process: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    relay_process: subprocess.Popen[bytes] | None = None
    relay_admin: int = 0

    def __post_init__(self) -> None:
        self.pki = self.work / "pki"
        self.loadgen = self.work / "loadgen"

    # set-up --------------------------------------------------------------------------

    def prepare(self) -> None:
        # nginx's ticket keys (80 bytes: AES-256 and HMAC-SHA256), shared by its workers.
        (self.work / "nginx-tickets.key").write_bytes(os.urandom(80))
        env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=mod", CGO_ENABLED="0")
        env.setdefault("GOCACHE", str(self.work / "gocache"))
        subprocess.run(
            ["go", "build", "-o", str(self.loadgen), "."],
            cwd=ROOT / "bench" / "loadgen",
            env=env,
            check=True,
        )
        devpki.generate(self.pki)
        for stem in ("rpn-server", "rpn-client", "mutuelle-server"):
            combined = (self.pki / f"{stem}.pem").read_bytes() + (
                self.pki / f"{stem}.key"
            ).read_bytes()
            (self.pki / f"{stem}.combined.pem").write_bytes(combined)
        (self.work / "request-fast.xml").write_bytes(request_body(FAST_AMC))
        (self.work / "request-slow.xml").write_bytes(request_body(SLOW_AMC))
        (self.work / "answer.xml").write_bytes(answer_body())
        for name in ("backend", "haproxy", "nginx", "relay", "floor", "slow", "relay_admin"):
            self.ports[name] = free_port()
        # With workers, worker i serves its admin endpoint on the configured port + i.
        reserve_ports(range(self.ports["relay_admin"] + 1, self.ports["relay_admin"] + 17))

    def start_backend(self) -> None:
        answer = (self.work / "answer.xml").read_text().replace("\n", " ")
        # nginx caps one configuration parameter at 4 KB: the answer is set in 2 KB pieces.
        pieces = [answer[i : i + 2000] for i in range(0, len(answer), 2000)]
        sets = "\n".join(f"            set $a{i} '{p}';" for i, p in enumerate(pieces))
        joined = "".join(f"$a{i}" for i in range(len(pieces)))
        conf = self._nginx_conf(
            "backend",
            f"""
    server {{
        listen 127.0.0.1:{self.ports["backend"]} ssl backlog=4096;
        {self._nginx_server_tls("mutuelle-server")}
        location / {{
            default_type "text/xml; charset=utf-8";
{sets}
            return 200 "{joined}";
        }}
    }}""",
        )
        p = self.procs.start(
            "backend", self.cores.wrap(self.cores.rest, ["nginx", "-c", str(conf), "-e", "stderr"])
        )
        wait_tcp(self.ports["backend"], p, "back-end nginx")
        self.peer_process["direct"] = p
        slow = self.procs.start(
            "slow-amc",
            self.cores.wrap(
                self.cores.rest,
                [
                    str(self.loadgen),
                    "serve",
                    f"-listen=127.0.0.1:{self.ports['slow']}",
                    f"-cert={self.pki / 'mutuelle-server.pem'}",
                    f"-key={self.pki / 'mutuelle-server.key'}",
                    f"-ca={self.pki / 'ca.pem'}",
                    f"-delay={self.args.slow_delay}s",
                    f"-body={self.work / 'answer.xml'}",
                    "-lifetime=60m",
                ],
            ),
        )
        wait_tcp(self.ports["slow"], slow, "slow AMC")

    def _nginx_server_tls(self, stem: str) -> str:
        return f"""
        ssl_certificate {self.pki / f"{stem}.pem"};
        ssl_certificate_key {self.pki / f"{stem}.key"};
        ssl_client_certificate {self.pki / "ca.pem"};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_ticket_key {self.work / "nginx-tickets.key"};
        keepalive_requests 1000000;
        keepalive_timeout 300s;"""

    def _nginx_conf(self, name: str, servers: str) -> Path:
        directory = self.work / name
        directory.mkdir(exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = directory / "nginx.conf"
        conf.write_text(
            f"""{user}
worker_processes 1;
daemon off;
master_process on;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
worker_rlimit_nofile 30000;
events {{ worker_connections 25000; }}
http {{
    access_log off;
{temp}
{servers}
}}
"""
        )
        return conf

    def start_proxies(self) -> None:
        backend = self.ports["backend"]
        conf = self._nginx_conf(
            "nginx",
            f"""
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{self.ports["nginx"]} ssl backlog=4096;
        {self._nginx_server_tls("rpn-server")}
        location / {{
            proxy_pass https://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_certificate {self.pki / "rpn-client.pem"};
            proxy_ssl_certificate_key {self.pki / "rpn-client.key"};
            proxy_ssl_trusted_certificate {self.pki / "ca.pem"};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;
        }}
    }}""",
        )
        p = self.procs.start(
            "nginx", self.cores.wrap(self.cores.proxy, ["nginx", "-c", str(conf), "-e", "stderr"])
        )
        wait_tcp(self.ports["nginx"], p, "nginx proxy")
        self.peer_process["nginx"] = p
        hconf = self.work / "haproxy.cfg"
        server_pem = self.pki / "rpn-server.combined.pem"
        client_pem = self.pki / "rpn-client.combined.pem"
        ca = f"ca-file {self.pki / 'ca.pem'}"
        name = "verifyhost localhost sni str(localhost)"
        hconf.write_text(
            f"""global
    nbthread 1
    maxconn 9000
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 30s
    timeout http-keep-alive 300s
    maxconn 9000
frontend roc
    bind 127.0.0.1:{self.ports["haproxy"]} ssl crt {server_pem} {ca} verify required
    default_backend amc
backend amc
    http-reuse always
    server amc1 127.0.0.1:{backend} ssl crt {client_pem} {ca} verify required {name}
"""
        )
        p = self.procs.start(
            "haproxy", self.cores.wrap(self.cores.proxy, ["haproxy", "-db", "-f", str(hconf)])
        )
        wait_tcp(self.ports["haproxy"], p, "HAProxy")
        self.peer_process["haproxy"] = p
        floor = [
            sys.executable,
            str(ROOT / "bench" / "floor.py"),
            f"--listen={self.ports['floor']}",
        ]
        floor += [f"--backend={backend}", f"--pki={self.pki}"]
        p = self.procs.start("floor", self.cores.wrap(self.cores.proxy, floor))
        wait_tcp(self.ports["floor"], p, "floor")
        self.peer_process["floor"] = p

    def start_relay(self, max_active: int = 64, idle_timeout: float = 300.0) -> None:
        """``twistd rpn`` on the proxy core, with a static annuaire (fast and slow AMC).

        Every exchange comes from hospital A: its in-flight cap (if the tree has one) is raised
        to what the slow-AMC scenario keeps in flight.
        """
        if self.relay_process is not None:
            self.procs.stop(self.relay_process)
        directory = self.work / "relay"
        directory.mkdir(exist_ok=True)
        amcs = {FAST_AMC: self.ports["backend"], SLOW_AMC: self.ports["slow"]}
        lines = []
        for number, port in amcs.items():
            lines += ["[[amc]]", f'number = "{number}"', f'name = "AMC {number}"']
            lines += ["[amc.endpoints]"]
            lines += [f'{s} = "https://127.0.0.1:{port}/roc/{s}"' for s in SERVICES]
        (directory / "annuaire.toml").write_text("\n".join(lines) + "\n")
        pki = self.pki
        tree = Path(self.args.relay_tree).resolve() if self.args.relay_tree else ROOT
        has_cap = "max_in_flight" in (tree / "rpn" / "config.py").read_text()
        in_flight = f"max_in_flight = {max_active + 100}\n" if has_cap else ""
        listen = f"tcp:{self.ports['relay']}:interface=127.0.0.1"
        if self.args.relay_workers <= 1:
            listen += ":backlog=4096"  # (a shared socket is opened by the relay itself)
        workers = f"workers = {self.args.relay_workers}\n" if self.args.relay_workers else ""
        (directory / "rpn.toml").write_text(
            f"""[listen]
endpoint = "{listen}"
{workers}
[tls]
certificate = "{pki / "rpn-server.pem"}"
private_key = "{pki / "rpn-server.key"}"
ca_certificates = ["{pki / "ca.pem"}"]

[establishments]
{in_flight}
[[establishments.legal_entities]]
finess = "{devpki.HOSPITAL_A["legal"]}"
sites = ["{devpki.HOSPITAL_A["site"]}"]

[annuaire]
static_file = "annuaire.toml"

[http]
idle_timeout = {idle_timeout}

[upstream]
certificate = "{pki / "rpn-client.pem"}"
private_key = "{pki / "rpn-client.key"}"
ca_certificates = ["{pki / "ca.pem"}"]
max_active = {max_active}
max_queued = 64
request_timeout = 10.0

[admin]
endpoint = "tcp:{self.ports["relay_admin"]}:interface=127.0.0.1"

[log]
access_log = "access.log"
"""
        )
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONUNBUFFERED="1")
        twistd = Path(sys.executable).parent / "twistd"
        argv = [str(twistd), "-n", "--pidfile=", "--logfile", str(directory / "twistd.log")]
        argv += ["rpn", "--config", str(directory / "rpn.toml")]
        cores = None if self.args.relay_workers > 1 else self.cores.proxy
        self.relay_process = self.procs.start("relay", self.cores.wrap(cores, argv), env=env)
        self.peer_process["relay"] = self.relay_process
        self.relay_admin = self.ports["relay_admin"]
        deadline = time.monotonic() + 30
        # Every worker (admin port + its index) must be ready: keep-alive clients connecting
        # before worker 1 listens would all be served by worker 0 for the whole run.
        waiting = [self.relay_admin + i for i in range(max(1, self.args.relay_workers))]
        while time.monotonic() < deadline:
            if self.relay_process.poll() is not None:
                raise RuntimeError(f"relay exited early: see {directory / 'twistd.log'}")
            try:
                while waiting and http_get(f"http://127.0.0.1:{waiting[0]}/readyz")[0] == 200:
                    waiting.pop(0)
                if not waiting:
                    wait_tcp(self.ports["relay"], self.relay_process, "relay")
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("relay not ready in 30 s")

    # load ----------------------------------------------------------------------------

    def url(self, peer: str) -> str:
        port = self.ports["backend" if peer == "direct" else peer]
        return f"https://127.0.0.1:{port}/roc/IDB"

    def loadgen_argv(self, command: str, peer: str, body: str, *extra: str) -> list[str]:
        argv = [str(self.loadgen), command, f"-url={self.url(peer)}"]
        argv += [f"-cert={self.pki / 'hospital-a.pem'}", f"-key={self.pki / 'hospital-a.key'}"]
        argv += [f"-ca={self.pki / 'ca.pem'}", f"-body={self.work / body}"]
        for header in SOAP_HEADERS:
            argv += ["-H", header]
        return self.cores.wrap(self.cores.rest, argv + list(extra))

    def load(
        self,
        peer: str,
        *,
        new_conn: bool = False,
        resume: bool = False,
        rate: float = 0.0,
        conns: int | None = None,
        duration: float | None = None,
        warmup: float | None = None,
        body: str = "request-fast.xml",
    ) -> dict[str, Any]:
        """One load-generator run against *peer*; its JSON report plus the rest-cores' load."""
        duration = duration or self.args.duration
        warmup = self.args.warmup if warmup is None else warmup
        extra = [f"-c={conns or self.args.connections}", f"-duration={duration}s"]
        extra += [f"-warmup={warmup}s", f"-rate={rate}", f"-label={peer}"]
        if new_conn or resume:
            extra.append("-new-conn")
        if resume:
            extra.append("-resume")
        argv = self.loadgen_argv("load", peer, body, *extra)
        peer_pid = self.peer_process[peer].pid
        with CoreLoad(self.cores.rest).measure() as rest_busy:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
            # The peer's own CPU over the measured window only (not the warm-up).
            time.sleep(warmup)
            cpu_before = cpu_seconds(children(peer_pid))
            t0 = time.monotonic()
            out, _ = process.communicate(timeout=duration + warmup + 90)
            cpu_used = cpu_seconds(children(peer_pid)) - cpu_before
            elapsed = time.monotonic() - t0
        if process.returncode != 0:
            raise RuntimeError(f"loadgen failed ({process.returncode}) against {peer}")
        report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        report["rest_busy"] = rest_busy()
        # The peer's CPU per answered exchange: its capacity on one core, whatever the noise.
        answered = report["rps"] * min(elapsed, report["seconds"])
        report["cpu_ms"] = 1000 * cpu_used / max(1.0, answered)
        return report


# -- scenarios ---------------------------------------------------------------------------


def fmt_failures(report: dict[str, Any]) -> str:
    by = report.get("by_failure") or {}
    return ",".join(f"{k}:{v}" for k, v in sorted(by.items())) or "0"


def throughput_pass(bench: Bench, pass_index: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Each peer in every mode, peers rotated from pass to pass."""
    results: dict[tuple[str, str], dict[str, Any]] = {}
    order = list(PEERS[pass_index % len(PEERS) :] + PEERS[: pass_index % len(PEERS)])
    for mode in MODES:
        for peer in order:
            results[(mode, peer)] = load_mode(bench, peer, mode)
    return results


def load_mode(bench: Bench, peer: str, mode: str) -> dict[str, Any]:
    report = bench.load(peer, new_conn=mode == "new-conn", resume=mode == "resumed")
    handshakes = report.get("handshakes", 0)
    report["resumed_share"] = report.get("resumed", 0) / handshakes if handshakes else 0.0
    return report


def fmt_resumed(mode: str, report: dict[str, Any]) -> str:
    """The share of new connections that resumed their session ('-' in keep-alive)."""
    return "-" if mode == "keep-alive" else f"{report.get('resumed_share', 0.0):.3f}"


def print_table(title: str, results: dict[tuple[str, str], dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(
        f"{'mode':<11} {'peer':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'failures':>10} {'cpu ms/req':>10} {'gen cores':>9} {'rest busy':>9} {'resumed':>8}"
    )
    for (mode, peer), r in results.items():
        print(
            f"{mode:<11} {peer:<8} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{fmt_failures(r):>10} {r['cpu_ms']:>10.3f} {r['cpu_cores']:>9.2f} "
            f"{r['rest_busy'] * 100:>8.0f}% {fmt_resumed(mode, r):>8}"
        )


def median_results(
    passes: list[dict[tuple[str, str], dict[str, Any]]],
) -> dict[tuple[str, str], dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for key in passes[0]:
        runs = [p[key] for p in passes]
        merged[key] = {
            name: statistics.median(r[name] for r in runs)
            for name in (
                "rps",
                "p50_ms",
                "p99_ms",
                "cpu_ms",
                "cpu_cores",
                "rest_busy",
                "resumed_share",
            )
        }
        merged[key]["by_failure"] = {"total": sum(r["failures"] for r in runs)}
        if merged[key]["by_failure"]["total"] == 0:
            merged[key]["by_failure"] = {}
    return merged


def latency_at_half_rate(bench: Bench, relay_rps: float) -> dict[str, float]:
    """p99 through the relay and straight to the back-end at half the relay's top rate.

    The top rate is measured again just before (neighbours' load varies on a shared machine),
    and the lower of it and the passes' median is used.
    """
    top = bench.load("relay", duration=4, warmup=1)["rps"]
    rate = max(10.0, min(top, relay_rps) / 2)
    relay = bench.load("relay", rate=rate)
    direct = bench.load("direct", rate=rate)
    return {
        "rate": rate,
        "relay_p99": relay["p99_ms"],
        "direct_p99": direct["p99_ms"],
        "added_p99": relay["p99_ms"] - direct["p99_ms"],
        "relay_p50": relay["p50_ms"],
        "direct_p50": direct["p50_ms"],
        "failures": relay["failures"] + direct["failures"],
    }


def slow_amc(bench: Bench, relay_rps: float) -> dict[str, float]:
    """Fast-AMC p99 alone, while 500 exchanges are held 2 s each by a slow AMC, and as control
    while the same extra exchanges go to the fast AMC instead (same rate, same 500 clients).

    The control tells the slow AMC's effect (in-flight exchanges held) from the extra traffic's
    (the slow exchanges are exchanges too, processed on the same core).
    """
    in_flight = bench.args.slow_in_flight
    bench.start_relay(max_active=in_flight + 100)
    rate = max(10.0, relay_rps / 4)
    gauge: list[float] = []
    recording = threading.Event()
    stop = threading.Event()

    def watch() -> None:
        # Scraped once a second in every phase, as Prometheus would: the baseline pays the
        # same scrape cost as the loaded run.
        url = f"http://127.0.0.1:{bench.relay_admin}/metrics"
        while not stop.wait(1.0):
            for line in http_get(url)[1].splitlines():
                if line.startswith(b"rpn_pool_active_requests") and SLOW_AMC.encode() in line:
                    if recording.is_set():
                        gauge.append(float(line.rsplit(b" ", 1)[1]))

    def beside(body: str, extra: Sequence[str], label: str) -> tuple[dict[str, Any], Any]:
        """The fast AMC's load measured while *in_flight* other clients run *body*.

        The slow AMC's in-flight gauge is recorded while the fast load runs beside the slow
        clients (only).
        """
        # The other clients open their connections over `ramp` seconds (500 client handshakes
        # and 500 upstream ones at once would be a connection storm, another scenario), and
        # back off 1 s after a failure as a real client would, instead of spinning on quick
        # refusals.
        ramp = 8.0
        settle = ramp + 2 * bench.args.slow_delay
        seconds = settle + bench.args.warmup + bench.args.duration + 4
        argv = bench.loadgen_argv(
            "load",
            "relay",
            body,
            f"-c={in_flight}",
            f"-duration={seconds - settle}s",
            f"-warmup={settle}s",
            f"-ramp={ramp}s",
            "-fail-pause=1s",
            "-timeout=20s",
            f"-label={label}",
            *extra,
        )
        others = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        try:
            time.sleep(settle)
            if label == "slow":
                recording.set()
            measured = bench.load("relay", rate=rate, conns=16)
            recording.clear()
            out, _ = others.communicate(timeout=seconds + 60)
        finally:
            if others.poll() is None:
                others.kill()
                others.wait()
        return measured, json.loads(out.decode().strip().splitlines()[-1])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        baseline = bench.load("relay", rate=rate, conns=16)
        loaded, slow_report = beside("request-slow.xml", (), "slow")
        extra_rate = max(1.0, slow_report["rps"])
        control, control_report = beside("request-fast.xml", (f"-rate={extra_rate}",), "extra")
    finally:
        stop.set()
        watcher.join(10)
    print(
        f"   slow AMC clients: {slow_report['ok']} answered, failures "
        f"{fmt_failures(slow_report)}; control clients: {control_report['ok']} answered at "
        f"{extra_rate:.0f}/s, failures {fmt_failures(control_report)}; fast AMC failures "
        f"{fmt_failures(loaded)}"
    )
    for name, r in (("baseline", baseline), ("slow AMC", loaded), ("control", control)):
        # The relay's CPU while the fast AMC's load runs (the other clients' share included):
        # p99 follows how busy the one core is.
        busy = r["cpu_ms"] * r["rps"] / 10
        print(
            f"   fast AMC, {name}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"relay core {busy:.0f}% busy"
        )
    bench.start_relay()
    return {
        "rate": rate,
        "baseline_p99": baseline["p99_ms"],
        "loaded_p99": loaded["p99_ms"],
        "ratio": loaded["p99_ms"] / max(0.001, baseline["p99_ms"]),
        "control_p99": control["p99_ms"],
        "control_ratio": control["p99_ms"] / max(0.001, baseline["p99_ms"]),
        "slow_in_flight": statistics.median(gauge) if gauge else 0.0,
        "slow_ok": slow_report["ok"],
        "slow_failures": slow_report["failures"],
        "fast_failures": baseline["failures"] + loaded["failures"] + control["failures"],
    }


def idle_connections(bench: Bench) -> dict[str, float]:
    """RSS of the relay holding N idle client connections (each served one exchange)."""
    assert bench.relay_process is not None
    pids = children(bench.relay_process.pid)
    before = rss_mb(pids)
    argv = bench.loadgen_argv(
        "idle",
        "relay",
        "request-fast.xml",
        f"-n={bench.args.idle}",
        "-parallel=64",
        "-hold=5s",
        "-open-timeout=240s",
    )
    if bench.args.idle_resume:
        argv.append("-resume")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
    assert process.stdout is not None
    try:
        opened = json.loads(process.stdout.readline())
        time.sleep(1)
        held = rss_mb(children(bench.relay_process.pid))
        done = json.loads(process.stdout.readline())
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {
        "opened": opened["opened"],
        "failed": opened["failed"],
        "open_seconds": opened["seconds"],
        "alive": done["alive"],
        "rss_before_mb": before,
        "rss_held_mb": held,
        "per_conn_kb": (held - before) * 1024 / max(1, opened["opened"]),
    }


def scrape_under_load(bench: Bench, plain_rps: float) -> dict[str, float]:
    """Keep-alive load, then the same while /metrics is scraped back to back (the worst case).

    The cost of one scrape is the relay CPU the scraped run used beyond what its exchanges
    cost in the plain run, divided by the scrapes: robust to neighbours' load.
    """
    timings: list[float] = []
    size = 0
    stop = threading.Event()
    url = f"http://127.0.0.1:{bench.relay_admin}/metrics"

    def scrape() -> None:
        nonlocal size
        while not stop.is_set():
            t0 = time.perf_counter()
            size = len(http_get(url, timeout=10)[1])
            timings.append(time.perf_counter() - t0)

    for _ in range(20):  # unloaded: one scrape alone
        t0 = time.perf_counter()
        http_get(url)
        timings.append(time.perf_counter() - t0)
    idle_ms = statistics.median(timings) * 1000
    plain = bench.load("relay")
    timings.clear()
    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        loaded = bench.load("relay")
    finally:
        stop.set()
        thread.join(15)
    answered = loaded["rps"] * loaded["seconds"]
    scrapes = len(timings) * bench.args.duration / (bench.args.duration + bench.args.warmup)
    extra_ms = (loaded["cpu_ms"] - plain["cpu_ms"]) * answered
    return {
        "scrape_idle_ms": idle_ms,
        "scrape_loaded_p50_ms": statistics.median(timings) * 1000 if timings else 0.0,
        "scrapes_per_s": len(timings) / (bench.args.duration + bench.args.warmup),
        "metrics_bytes": size,
        "rps_plain": plain["rps"],
        "rps_scraped": loaded["rps"],
        "rps_ratio": loaded["rps"] / max(1.0, plain["rps"]),
        "cpu_ms_per_scrape": extra_ms / max(1.0, scrapes),
    }


# -- main --------------------------------------------------------------------------------


def worker_scaling(bench: Bench) -> None:
    """The relay alone with 1 then 2 workers, every mode, repeated; the 2/1 ratio per mode.

    With one worker the relay is pinned to the proxy core; with two it is not pinned (one
    worker per core), and shares the load generator's core: on a 2-core machine the ratio is
    a floor of what a dedicated second core gives.
    """
    configured = bench.args.relay_workers
    medians: dict[int, dict[str, dict[str, float]]] = {}
    try:
        for workers in (1, 2):
            bench.args.relay_workers = workers
            bench.start_relay()
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for _ in range(bench.args.repeat):
                for mode in MODES:
                    runs[mode].append(load_mode(bench, "relay", mode))
            medians[workers] = {
                mode: {
                    "rps": statistics.median(r["rps"] for r in rs),
                    "resumed_share": statistics.median(r["resumed_share"] for r in rs),
                    "rest_busy": statistics.median(r["rest_busy"] for r in rs),
                }
                for mode, rs in runs.items()
            }
    finally:
        bench.args.relay_workers = configured
        bench.start_relay()
    print(f"\nscenario workers (medians of {bench.args.repeat} runs per mode)")
    print(f"{'mode':<11} {'1 worker':>9} {'2 workers':>9} {'2/1':>6} {'resumed 1/2':>13}")
    for mode in MODES:
        one, two = medians[1][mode], medians[2][mode]
        shares = (
            "-"
            if mode == "keep-alive"
            else (f"{one['resumed_share']:.3f}/{two['resumed_share']:.3f}")
        )
        print(
            f"{mode:<11} {one['rps']:>9.0f} {two['rps']:>9.0f} "
            f"{two['rps'] / max(1.0, one['rps']):>6.2f} {shares:>13}"
        )
    print("(2 workers share the load generator's core: the ratio is a lower bound)")
    sys.stdout.flush()


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="passes over every peer and mode")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--idle", type=int, default=10000, help="idle connections to hold")
    parser.add_argument(
        "--idle-resume", action="store_true", help="open idle connections with TLS resumption"
    )
    parser.add_argument("--slow-in-flight", type=int, default=500)
    parser.add_argument("--slow-delay", type=float, default=2.0)
    parser.add_argument(
        "--scenarios",
        default="latency,slow,idle,scrape,workers",
        help="comma-separated relay scenarios after the passes ('' for none)",
    )
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="peers to measure (default: all five)"
    )
    parser.add_argument("--relay-tree", help="source tree to run the relay from (experiments)")
    parser.add_argument(
        "--relay-workers", type=int, default=0, help="set [listen] workers (if the tree has it)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def raise_fd_limit(wanted: int = 100_000) -> None:
    """Room for 10,000 idle connections (and HAProxy's maxconn), as far as allowed."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            return
        except (ValueError, OSError):
            continue


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    raise_fd_limit()
    global PEERS
    PEERS = tuple(p for p in args.peers.split(",") if p)
    for tool in ("go", "nginx", "haproxy"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (see bench/README.md)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="piano-bench-"))
    procs = Processes(work)
    cores = Cores.detect(not args.no_pin)
    bench = Bench(args, work, procs, cores)
    print(f"bench: work directory {work}; proxy core {cores.proxy}, others {cores.rest}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        bench.prepare()
        bench.start_backend()
        bench.start_proxies()
        bench.start_relay()
        passes = []
        for i in range(args.repeat):
            passes.append(throughput_pass(bench, i))
            print_table(f"pass {i + 1} of {args.repeat}", passes[-1])
            sys.stdout.flush()
        medians = median_results(passes)
        print_table(f"medians of {args.repeat} passes", medians)
        relay_rps = medians[("keep-alive", "relay")]["rps"] if "relay" in PEERS else 0.0
        scenarios = [s for s in args.scenarios.split(",") if s] if "relay" in PEERS else []
        for name in scenarios:
            runs: list[dict[str, float]] = []
            # Memory held by idle connections is not noisy (and takes minutes): measured once.
            for _ in range(1 if name == "idle" else args.repeat):
                if name == "latency":
                    runs.append(latency_at_half_rate(bench, relay_rps))
                elif name == "slow":
                    runs.append(slow_amc(bench, relay_rps))
                elif name == "idle":
                    runs.append(idle_connections(bench))
                    bench.start_relay()
                elif name == "scrape":
                    runs.append(scrape_under_load(bench, relay_rps))
                elif name == "workers":
                    worker_scaling(bench)
                    break
                else:
                    raise SystemExit(f"unknown scenario {name!r}")
            if not runs:
                continue
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            shown = ", ".join(f"{k}={v:.2f}" for k, v in med.items())
            print(f"\nscenario {name} (median of {len(runs)}): {shown}")
            for r in runs:
                print("   run: " + ", ".join(f"{k}={v:.2f}" for k, v in r.items()))
            sys.stdout.flush()

        def ratio(mode: str, peer: str) -> str:
            if "relay" not in PEERS or peer not in PEERS:
                return "n/a"
            return f"{medians[(mode, 'relay')]['rps'] / max(1.0, medians[(mode, peer)]['rps']):.3f}"

        def cpu_ratio(mode: str, peer: str) -> str:
            if "relay" not in PEERS or peer not in PEERS:
                return "n/a"
            relay_ms = medians[(mode, "relay")]["cpu_ms"]
            return f"{medians[(mode, peer)]['cpu_ms'] / max(1e-6, relay_ms):.3f}"

        for mode in MODES:
            print(
                f"\nCPU per exchange, peer/relay ({mode}): "
                + " ".join(f"relay/{p}={cpu_ratio(mode, p)}" for p in ("haproxy", "nginx"))
            )
        if "floor" in PEERS and "relay" in PEERS:
            # What no Twisted + pyOpenSSL relay can beat on this machine (bench/floor.py).
            line = []
            for mode in MODES:
                line.append(f"relay/floor={ratio(mode, 'floor')}")
                if "haproxy" in PEERS:
                    haproxy = max(1.0, medians[(mode, "haproxy")]["rps"])
                    line.append(f"floor/haproxy={medians[(mode, 'floor')]['rps'] / haproxy:.3f}")
                line[-1] += f" ({mode})"
            print("\nfloor: " + " ".join(line))
        if "relay" in PEERS:
            full = max(1.0, medians[("new-conn", "relay")]["rps"])
            own = medians[("resumed", "relay")]["rps"] / full
            others = " ".join(
                f"relay/{p}={ratio('resumed', p)}" for p in ("haproxy", "nginx", "direct")
            )
            print(f"\nresumed: {others} relay resumed/relay new-conn={own:.3f}")
        print(
            "\nnew-conn: "
            + " ".join(f"relay/{p}={ratio('new-conn', p)}" for p in ("haproxy", "nginx", "direct"))
        )
        print(
            " ".join(f"relay/{p}={ratio('keep-alive', p)}" for p in ("haproxy", "nginx", "direct"))
        )
        return 0
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
