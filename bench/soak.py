"""Soak: the relay under mixed traffic and random AMC faults for a long while (not a unit test).

``python bench/soak.py`` (30 minutes; ``--minutes 10`` for a shorter run) writes a fresh
development PKI under a temporary directory, starts on 127.0.0.1 with free ports

- several fake AMCs (``tests/integration/fake_amc.py``, threads of this process) that answer
  most exchanges and, at random, answer late (past the relay's deadline), reset the connection
  before or in the middle of the answer, send garbage, a truncated body or a 503, or close the
  keep-alive connection after answering; one AMC at a time also goes down for a while (its port
  refuses connections) and comes back, so breakers open, half-open and ramp back;
- the relay (``twistd rpn``) with small deadlines and breaker settings;
- client processes sending exchanges (keep-alive and new TLS connections, two establishments,
  every relayed service, some refused on purpose: unknown AMC, wrong sender, not XML), some
  hanging up before their answer; bursts of exchanges written back to back on as many
  connections; and a configuration reload (SIGHUP) every minute, limits changing under load.
  The AMCs announce a keep-alive timeout shorter than the relay's (``Keep-Alive: timeout=3``).

Every exchange has its own id, and each AMC counts the ids it receives, so at the end the soak
checks, exchange by exchange, that nothing was lost or sent twice:

- every exchange sent got an HTTP answer from the relay;
- an answer from an AMC (relayed as received) reached that AMC exactly once;
- a fault saying "not delivered" (403/400/413 refusals, 503-*, 502-AMC-TLS) never reached an AMC;
- a fault saying "may have reached the AMC" (502-AMC-REPONSE, 504-AMC-DELAI) reached it at most
  once (never retried).

At the end, with the relay still running, it reads what the relay holds from ``/metrics`` (AMC
slots in use and waiting, exchanges in flight, per establishment): all must be back to zero;
every exchange must have exactly one access-log line; each AMC must have received what the
relay says it wrote (``rpn_upstream_requests_total``). It prints the relay's resident memory
(VmRSS) and open file descriptors after a warm-up and at the end, with samples every minute,
then the exchanges sent, answered and counted at the AMCs, and how many faults said "may have
reached the AMC". It exits non-zero when an exchange was lost, duplicated, left unanswered or
unrecorded, or when anything is still held. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roc.messages import Routing, envelope  # noqa: E402
from tests.integration.fake_amc import Behaviour, FakeAmc, Received  # noqa: E402
from tests.integration.harness import Twistd, free_port, write_toml  # noqa: E402
from tools import devpki  # noqa: E402

SERVICES = ("IDB", "SIM", "CLC", "DEL")
AMC_NUMBERS = ("990000101", "990000202", "990000303", "990000404")
UNKNOWN_AMC = "990000999"
REQUEST_TIMEOUT = 1.0
ANSWER = (
    b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.'
    b'org/soap/envelope/"><soap:Body><i:Reponse xmlns:i="urn:piano:roc:idb:v1"><i:CodeRetour>'
    b"00</i:CodeRetour></i:Reponse></soap:Body></soap:Envelope>"
)
BODY = (
    '<i:Demande xmlns:i="urn:piano:roc:idb:v1"><i:Beneficiaire><i:NIR>180059999900135</i:NIR>'
    "</i:Beneficiaire></i:Demande>"
)
#: Relay fault codes saying the exchange provably never reached an AMC.
NOT_DELIVERED = re.compile(r"RPN-(4\d\d-.*|503-.*|502-AMC-TLS)")
#: Relay fault codes saying the exchange may have reached the AMC.
MAYBE_DELIVERED = {"RPN-502-AMC-REPONSE", "RPN-504-AMC-DELAI", "RPN-500-INTERNE"}
_CODE = re.compile(rb"<(?:\w+:)?Code>(RPN-[A-Z0-9-]+)</")

#: (weight, behaviour) of one AMC answer; the rest of the time the AMC answers at once.
FAULTS: tuple[tuple[float, Behaviour], ...] = (
    (0.015, Behaviour(body=ANSWER, delay=REQUEST_TIMEOUT + 0.5)),
    (0.010, Behaviour(mode="reset")),
    (0.010, Behaviour(body=ANSWER, mode="reset_mid_answer")),
    (0.010, Behaviour(mode="garbage")),
    (0.010, Behaviour(body=ANSWER, mode="truncated")),
    (0.005, Behaviour(status=503, body=b"<busy/>")),
    (0.100, Behaviour(body=ANSWER, mode="close")),
)


def amc_chooser(seed: int, faults: bool = True) -> Callable[[Received], Behaviour]:
    rng = random.Random(seed)
    lock = threading.Lock()

    def choose(_: Received) -> Behaviour:
        with lock:
            draw = rng.random()
            small_delay = rng.uniform(0.0, 0.02)
        for weight, behaviour in FAULTS if faults else ():
            if draw < weight:
                return behaviour
            draw -= weight
        return Behaviour(body=ANSWER, delay=small_delay)

    return choose


# -- clients (separate processes) -----------------------------------------------------------


@dataclass(frozen=True)
class ClientPlan:
    index: int
    port: int
    pki: str
    rate: float
    seconds: float
    seed: int
    new_connections: float


def _context(pki: Path, identity: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(str(pki / f"{identity}.pem"), str(pki / f"{identity}.key"))
    return ctx


def _request(
    plan: ClientPlan, rng: random.Random, n: int
) -> tuple[str, str, bytes, dict[str, str]]:
    """(exchange id, amc or kind, body, headers) of the next exchange."""
    hospital = devpki.HOSPITAL_A if plan.index % 2 == 0 else devpki.HOSPITAL_B
    exchange_id = f"soak-{plan.index}-{n}"
    service = rng.choice(SERVICES)
    amc = rng.choice(AMC_NUMBERS)
    draw = rng.random()
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if draw < 0.01:
        amc = UNKNOWN_AMC
    elif draw < 0.02:
        other = devpki.HOSPITAL_B if hospital is devpki.HOSPITAL_A else devpki.HOSPITAL_A
        routing = Routing(service, amc, other["legal"], other["site"], exchange_id=exchange_id)
        return exchange_id, "refused", envelope(routing, BODY), headers
    elif draw < 0.03:
        return exchange_id, "not_xml", b"<not xml", headers
    routing = Routing(service, amc, hospital["legal"], hospital["site"], exchange_id=exchange_id)
    headers["SOAPAction"] = f'"urn:piano:roc:{service}"'
    return exchange_id, amc, envelope(routing, BODY), headers


#: Share of exchanges whose client hangs up before the answer.
HANG_UP = 0.02
#: Status recorded for an exchange whose client hung up on purpose.
GONE = -1


def _hang_up(plan: ClientPlan, ctx: ssl.SSLContext, body: bytes, headers: dict[str, str]) -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /roc HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", plan.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            time.sleep(0.05)


def run_client(plan: ClientPlan, results: multiprocessing.Queue[object]) -> None:
    """Send exchanges at about *plan.rate* per second; report (id, amc, status, code) each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rng = random.Random(plan.seed)
    identity = "hospital-a" if plan.index % 2 == 0 else "hospital-b"
    ctx = _context(Path(plan.pki), identity)
    outcomes: list[tuple[str, str, int, str]] = []
    conn: http.client.HTTPSConnection | None = None
    deadline = time.monotonic() + plan.seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        exchange_id, amc, body, headers = _request(plan, rng, n)
        if rng.random() < HANG_UP:
            try:
                _hang_up(plan, ctx, body, headers)
            except OSError as exc:
                outcomes.append((exchange_id, amc, 0, type(exc).__name__))
            else:
                outcomes.append((exchange_id, amc, GONE, ""))
            time.sleep(rng.expovariate(plan.rate))
            continue
        if conn is None or rng.random() < plan.new_connections:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection("127.0.0.1", plan.port, context=ctx, timeout=30)
        try:
            conn.request("POST", "/roc", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            outcomes.append((exchange_id, amc, 0, type(exc).__name__))
            conn.close()
            conn = None
        else:
            found = _CODE.search(data) if b"ErreurRPN" in data else None
            code = found.group(1).decode() if found else ""
            outcomes.append((exchange_id, amc, response.status, code))
        time.sleep(rng.expovariate(plan.rate))
    if conn is not None:
        conn.close()
    results.put((plan.index, outcomes))


# -- the relay and its AMCs -----------------------------------------------------------------


def relay_stats(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open file descriptors) of process *pid*."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def start_relay(directory: Path, pki: Path, amcs: dict[str, FakeAmc]) -> tuple[Twistd, int, int]:
    port, admin = free_port(), free_port()
    lines = []
    for number, amc in amcs.items():
        lines += ["[[amc]]", f'number = "{number}"', f'name = "AMC {number}"', "[amc.endpoints]"]
        lines += [f'{s} = "{amc.base_url()}/roc/{s}"' for s in SERVICES]
    (directory / "annuaire.toml").write_text("\n".join(lines) + "\n")
    config = write_toml(
        directory / "rpn.toml",
        {
            "listen": {"endpoint": f"tcp:{port}:interface=127.0.0.1"},
            "tls": {
                "certificate": pki / "rpn-server.pem",
                "private_key": pki / "rpn-server.key",
                "ca_certificates": [pki / "ca.pem"],
            },
            "http": {"read_timeout": 10.0, "idle_timeout": 15.0},
            "establishments": {
                "legal_entities": devpki.registration(devpki.HOSPITAL_A, devpki.HOSPITAL_B),
            },
            "annuaire": {"static_file": str(directory / "annuaire.toml")},
            "upstream": {
                "certificate": pki / "rpn-client.pem",
                "private_key": pki / "rpn-client.key",
                "ca_certificates": [pki / "ca.pem"],
                "connect_timeout": 1.0,
                "request_timeout": REQUEST_TIMEOUT,
                "max_active": 8,
                "max_queued": 16,
                "queue_timeout": 1.0,
                "idle_timeout": 5.0,
            },
            "upstream.breaker": {
                "failure_threshold": 5,
                "open_base": 1.0,
                "open_max": 8.0,
                "half_open_probes": 2,
                "recovery_ramp": 3.0,
            },
            "admin": {"endpoint": f"tcp:{admin}:interface=127.0.0.1"},
            "log": {"access_log": str(directory / "access.log")},
        },
    )
    twistd = Twistd("rpn", config, directory / "twistd.log", f"http://127.0.0.1:{admin}/readyz")
    return twistd.start(), port, admin


def bursts(
    port: int, pki: Path, stop: threading.Event, every: float, out: list[tuple[str, str, int, str]]
) -> None:
    """Every *every* seconds, 30 exchanges written back to back on as many connections."""
    rng = random.Random(11)
    ctx = _context(pki, "hospital-a")
    round_ = 0
    while not stop.wait(every):
        round_ += 1
        amc = rng.choice(AMC_NUMBERS)
        pending = []
        for i in range(30):
            exchange_id = f"burst-{round_}-{i}"
            routing = Routing(
                "IDB",
                amc,
                devpki.HOSPITAL_A["legal"],
                devpki.HOSPITAL_A["site"],
                exchange_id=exchange_id,
            )
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            try:
                conn.connect()
            except OSError as exc:
                out.append((exchange_id, amc, 0, type(exc).__name__))
                continue
            pending.append((exchange_id, conn, envelope(routing, BODY)))
        for _exchange_id, conn, body in pending:
            conn.request("POST", "/roc", body=body, headers={"Content-Type": "text/xml"})
        for exchange_id, conn, _ in pending:
            try:
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                out.append((exchange_id, amc, 0, type(exc).__name__))
            else:
                found = _CODE.search(data) if b"ErreurRPN" in data else None
                out.append(
                    (exchange_id, amc, response.status, found.group(1).decode() if found else "")
                )
            conn.close()


def reloads(relay: Twistd, stop: threading.Event, every: float) -> None:
    """A SIGHUP every *every* seconds, the AMCs' slot limit alternating between 8 and 6."""
    n = 0
    while not stop.wait(every):
        n += 1
        text = relay.config.read_text()
        limit = 6 if n % 2 else 8
        relay.config.write_text(re.sub(r"max_active = \d+", f"max_active = {limit}", text))
        assert relay.process is not None
        relay.process.send_signal(signal.SIGHUP)


def held(admin: int) -> dict[str, float]:
    """What the relay holds now, summed per metric, from its /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    totals: dict[str, float] = Counter()
    forwarded: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name in (
            "rpn_pool_active_requests",
            "rpn_pool_queued_requests",
            "rpn_exchanges_in_flight",
            "rpn_establishment_in_flight",
        ):
            totals[name] += value
        elif name == "rpn_upstream_requests_total":
            amc = re.search(r'amc="(\d+)"', labels)
            if amc:
                forwarded[amc.group(1)] = value
    return {**totals, **{f"forwarded:{amc}": n for amc, n in forwarded.items()}}


def access_log(path: Path) -> tuple[Counter[str], dict[str, tuple[str, str]]]:
    """Lines per exchange id, and the (AMC, relay code) each exchange was recorded with."""
    lines: Counter[str] = Counter()
    recorded: dict[str, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        lines[entry["exchange_id"]] += 1
        recorded[entry["exchange_id"]] = (entry["amc"], entry["code"])
    return lines, recorded


def outages(amcs: list[FakeAmc], stop: threading.Event, every: float, length: float) -> None:
    """Take one AMC down for *length* seconds every *every* seconds, then bring it back."""
    rng = random.Random(7)
    while not stop.wait(every):
        amc = rng.choice(amcs)
        print(f"  outage: AMC on port {amc.port} down for {length:.0f} s", flush=True)
        amc.stop()
        stop.wait(length)
        amc.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--rate", type=float, default=15.0, help="exchanges/s per client")
    parser.add_argument("--outage-every", type=float, default=90.0, help="seconds between outages")
    parser.add_argument("--outage-length", type=float, default=20.0, help="seconds of an outage")
    parser.add_argument(
        "--new-connections",
        type=float,
        default=0.2,
        help="share of exchanges sent on a new TLS connection (default 0.2)",
    )
    parser.add_argument(
        "--no-faults",
        action="store_true",
        help="AMCs always answer, no outages (bursts, hang-ups and reloads still happen)",
    )
    parser.add_argument(
        "--amc-keep-alive",
        type=float,
        default=3.0,
        help="seconds the AMCs keep an idle connection, announced in Keep-Alive (default 3)",
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="piano-soak-"))
    pki = workdir / "pki"
    devpki.generate(pki)
    amcs = {
        number: FakeAmc(
            pki, choose=amc_chooser(i, not args.no_faults), keep_alive_timeout=args.amc_keep_alive
        ).start()
        for i, number in enumerate(AMC_NUMBERS)
    }
    relay, port, admin = start_relay(workdir, pki, amcs)
    assert relay.process is not None
    pid = relay.process.pid
    seconds = args.minutes * 60
    faults = (
        "always answering"
        if args.no_faults
        else f"with random faults and a {args.outage_length:g} s outage every "
        f"{args.outage_every:g} s"
    )
    print(
        f"soak: {args.minutes:g} min, {args.clients} client processes at ~{args.rate:g}/s each, "
        f"{len(amcs)} AMCs {faults}, {args.new_connections:.0%} of exchanges on a new TLS "
        f"connection; relay pid {pid}, work dir {workdir}",
        flush=True,
    )
    stop = threading.Event()
    status = 1
    spawn = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[object] = spawn.Queue()
    clients = [
        spawn.Process(
            target=run_client,
            args=(
                ClientPlan(i, port, str(pki), args.rate, seconds, 1000 + i, args.new_connections),
                results,
            ),
        )
        for i in range(args.clients)
    ]
    try:
        for client in clients:
            client.start()
        started = time.monotonic()
        time.sleep(min(30.0, seconds / 10))
        rss_start, fds_start = relay_stats(pid)
        print(f"start (after warm-up): relay RSS {rss_start} KiB, open fds {fds_start}", flush=True)
        chaos = threading.Thread(
            target=outages,
            args=(list(amcs.values()), stop, args.outage_every, args.outage_length),
            daemon=True,
        )
        burst_outcomes: list[tuple[str, str, int, str]] = []
        extras = [
            threading.Thread(target=bursts, args=(port, pki, stop, 30.0, burst_outcomes)),
            threading.Thread(target=reloads, args=(relay, stop, 60.0)),
        ]
        for extra in extras:
            extra.start()
        if not args.no_faults:
            chaos.start()
        while time.monotonic() - started < seconds:
            time.sleep(min(60.0, max(0.1, seconds - (time.monotonic() - started))))
            rss, fds = relay_stats(pid)
            received = sum(len(a.received) for a in amcs.values())
            print(
                f"  t={time.monotonic() - started:6.0f} s  RSS {rss} KiB  fds {fds}  "
                f"received by AMCs {received}",
                flush=True,
            )
        stop.set()
        if chaos.is_alive():
            chaos.join(args.outage_length + 10)
        for extra in extras:
            if extra.is_alive():
                extra.join(60)
        outcomes: list[tuple[str, str, int, str]] = list(burst_outcomes)
        for _ in clients:
            _index, part = results.get(timeout=120)
            outcomes.extend(part)  # type: ignore[arg-type]
        for client in clients:
            client.join(30)
        time.sleep(REQUEST_TIMEOUT + 2.0)  # late answers of slow AMCs are counted too
        rss_end, fds_end = relay_stats(pid)
        status = report(
            outcomes,
            amcs,
            (rss_start, fds_start),
            (rss_end, fds_end),
            held(admin),
            *access_log(workdir / "access.log"),
        )
    finally:
        stop.set()
        for client in clients:
            if client.is_alive():
                client.terminate()
        relay.stop()
        for amc in amcs.values():
            amc.stop()
    return status


def report(
    outcomes: list[tuple[str, str, int, str]],
    amcs: dict[str, FakeAmc],
    start: tuple[int, int],
    end: tuple[int, int],
    holding: dict[str, float],
    logged: Counter[str],
    recorded: dict[str, tuple[str, str]],
) -> int:
    counted: Counter[str] = Counter()
    for amc in amcs.values():
        counted.update(amc.counts())
    gone = [o for o in outcomes if o[2] == GONE]
    outcomes_all = outcomes
    outcomes = [o for o in outcomes if o[2] != GONE]
    sent = len(outcomes)
    answered = sum(1 for o in outcomes if o[2] != 0)
    relayed = [o for o in outcomes if o[2] != 0 and not o[3]]
    faults = Counter(o[3] for o in outcomes if o[3] and o[2] != 0)
    unanswered = Counter(o[3] for o in outcomes if o[2] == 0)
    ids = {o[0] for o in outcomes}
    at_amcs = sum(n for exchange, n in counted.items() if exchange in ids)
    ids |= {o[0] for o in gone}
    duplicated = sorted(e for e, n in counted.items() if e in ids and n > 1)
    lost = [o for o in relayed if counted[o[0]] != 1]
    wrongly_delivered = [o for o in outcomes if NOT_DELIVERED.fullmatch(o[3]) and counted[o[0]]]
    maybe = [o for o in outcomes if o[3] in MAYBE_DELIVERED]
    maybe_reached = sum(1 for o in maybe if counted[o[0]] == 1)
    print()
    print(
        f"relay RSS      start {start[0]:>8} KiB   end {end[0]:>8} KiB   ({end[0] / start[0]:.2f}x)"
    )
    print(f"relay open fds start {start[1]:>8}       end {end[1]:>8}")
    print(f"exchanges sent {sent}, answered {answered}, unanswered {sent - answered}")
    statuses = dict(Counter(o[2] for o in relayed))
    print(f"  answers relayed from an AMC: {len(relayed)} (HTTP status: {statuses})")
    print(f"  relay faults: {sum(faults.values())}")
    for code, n in sorted(faults.items()):
        print(f"    {code:28} {n}")
    if unanswered:
        print(f"  unanswered (client-side errors): {dict(unanswered)}")
    print(
        f"counted at the AMCs {at_amcs} = relayed answers {len(relayed)} + faults that "
        f"reached the AMC {maybe_reached} (of {len(maybe)} 'may have reached')"
    )
    print(f"duplicated at an AMC: {len(duplicated)}   relayed but not counted once: {len(lost)}")
    print(f"'not delivered' faults that did reach an AMC: {len(wrongly_delivered)}")
    print(f"'may have reached the AMC' faults: {len(maybe)} ({dict(Counter(o[3] for o in maybe))})")
    print(f"clients that hung up before their answer: {len(gone)}")
    still = {k: v for k, v in holding.items() if not k.startswith("forwarded:") and v}
    print(f"held at the end (slots, queued, in flight): {still or 'nothing'}")
    # Exchanges whose id the relay could read (not the "not XML" ones) have one line each.
    readable = [o for o in outcomes_all if o[2] != 0 and o[1] != "not_xml"]
    not_logged = [o for o in readable if logged[o[0]] != 1]
    print(f"exchanges without exactly one access-log line: {len(not_logged)} {not_logged[:5]}")
    # Written by the relay = received by the AMC + written but lost on the way (the AMC
    # closing or going down as the request left): each of those is a "may have reached"
    # fault in the access log (whether its client waited for it or had hung up).
    lost_on_the_way = Counter(
        amc
        for exchange, (amc, code) in recorded.items()
        if code in MAYBE_DELIVERED and counted[exchange] == 0
    )
    mismatched = {
        number: (len(amc.received), lost_on_the_way[number], holding.get(f"forwarded:{number}"))
        for number, amc in amcs.items()
        if len(amc.received) + lost_on_the_way[number] != holding.get(f"forwarded:{number}", 0.0)
    }
    print(
        "requests written by the relay = received by the AMCs "
        f"{sum(len(a.received) for a in amcs.values())} + lost on the way "
        f"{sum(lost_on_the_way.values())}: "
        + ("yes" if not mismatched else f"NO (received, lost, written) {mismatched}")
    )
    # Flat: what a warmed-up relay holds does not grow with the exchanges it has served.
    rss_flat = end[0] - start[0] < max(16 * 1024, start[0] // 4)
    fds_flat = end[1] - start[1] <= 10
    print(f"RSS flat: {'yes' if rss_flat else 'NO'}   open fds flat: {'yes' if fds_flat else 'NO'}")
    ok = (
        rss_flat
        and fds_flat
        and sent == answered
        and not duplicated
        and not lost
        and not wrongly_delivered
        and at_amcs == len(relayed) + maybe_reached
        and not still
        and not not_logged
        and not mismatched
    )
    for label, items in (("duplicated", duplicated), ("lost", lost), ("wrong", wrongly_delivered)):
        if items:
            print(f"  first {label}: {items[:5]}")
    print("RESULT:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
