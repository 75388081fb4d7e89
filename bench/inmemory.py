# ruff: noqa: E402 - the reactor is installed before the modules that import it
"""The relay's own work per exchange, without TLS or sockets: N keep-alive exchanges in memory.

The relay as ``build_service`` wires it (static annuaire, access log to a file, Prometheus),
its client connection and its AMC connection on memory transports, the bench's 2 KB request
(a different exchange id each time) and 4 KB answer behind an nginx-like head. Prints CPU
microseconds per exchange (noisy on a shared machine), or a cProfile table; for a steady
figure, count instructions (the difference between two lengths, divided by 200):

    WARM=50 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/inmemory.py --n 50 --rounds 1      # then --n 250
    PYTHONPATH=<other tree> ... (to compare trees)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet import epollreactor

epollreactor.install()
from OpenSSL import crypto
from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import succeed

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run as benchrun  # payloads only

from tools import devpki

work = Path(tempfile.mkdtemp(prefix="harness-"))
pki = Path(os.environ.get("INMEMORY_PKI", str(Path(tempfile.gettempdir()) / "piano-inmemory-pki")))
if not (pki / "ca.pem").exists():
    devpki.generate(pki)
req_body = benchrun.request_body(benchrun.FAST_AMC)
ans_body = benchrun.answer_body().replace(b"\n", b" ")
(work / "annuaire.toml").write_text(
    '[[amc]]\nnumber = "990000101"\nname = "AMC 990000101"\n[amc.endpoints]\n'
    + "".join(f'{s} = "https://127.0.0.1:9/roc/{s}"\n' for s in benchrun.SERVICES)
)
(work / "rpn.toml").write_text(f"""[listen]
endpoint = "tcp:0:interface=127.0.0.1"
[tls]
certificate = "{pki / "rpn-server.pem"}"
private_key = "{pki / "rpn-server.key"}"
ca_certificates = ["{pki / "ca.pem"}"]
[establishments]
max_in_flight = 164
[[establishments.legal_entities]]
finess = "{devpki.HOSPITAL_A["legal"]}"
sites = ["{devpki.HOSPITAL_A["site"]}"]
[annuaire]
static_file = "{work / "annuaire.toml"}"
[http]
idle_timeout = 300.0
[upstream]
certificate = "{pki / "rpn-client.pem"}"
private_key = "{pki / "rpn-client.key"}"
ca_certificates = ["{pki / "ca.pem"}"]
max_active = 64
max_queued = 64
request_timeout = 10.0
[admin]
endpoint = "tcp:0:interface=127.0.0.1"
[log]
access_log = "{work / "access.log"}"
""")

import rpn.http.client as hc
from rpn.config import load_config
from rpn.service import build_service

config = load_config(work / "rpn.toml")
registry = CollectorRegistry()
service = build_service(config, reactor, registry)
relay = service.relay
http = service.http

cert = crypto.load_certificate(crypto.FILETYPE_PEM, (pki / "hospital-a.pem").read_bytes())


class ServerTransport:
    disconnecting = False

    def __init__(self):
        self.out = []

    def write(self, data):
        self.out.append(data)

    def writeSequence(self, seq):
        self.out.extend(seq)

    def getPeerCertificate(self):
        return cert

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def loseConnection(self):
        raise SystemExit("server connection closed: " + repr(self.out[-1:]))

    def abortConnection(self):
        pass

    def getPeer(self):
        return None

    def getHost(self):
        return None


class UpTransport:
    disconnecting = False

    def __init__(self):
        self.out = []

    def write(self, data):
        self.out.append(data)

    def loseConnection(self):
        raise SystemExit("upstream closed")

    def abortConnection(self):
        raise SystemExit("upstream aborted")


upconn = None


def fake_connect(self, route):
    global upconn
    c = route.factory.buildProtocol(None)
    c.makeConnection(UpTransport())
    upconn = c
    return succeed(c)


hc.ConnectionPool.connect = fake_connect

proto = http.buildProtocol(None)
st = ServerTransport()
proto.makeConnection(st)

request = (
    b"POST /roc/IDB HTTP/1.1\r\nHost: 127.0.0.1:9443\r\nUser-Agent: Go-http-client/1.1\r\n"
    b"Content-Length: %d\r\nContent-Type: text/xml; charset=utf-8\r\n"
    b'Soapaction: "urn:piano:roc:IDB"\r\nAccept-Encoding: gzip\r\n\r\n' % len(req_body)
) + req_body
answer = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 10:00:00 GMT\r\n"
    b"Content-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n"
    % len(ans_body)
) + ans_body

import itertools
import uuid

_eid = request[
    request.index(b"<rt:IdentifiantEchange>") + 23 : request.index(b"</rt:IdentifiantEchange>")
]
_ids = [request.replace(_eid, str(uuid.UUID(int=i)).encode()) for i in range(1000)]
_cycle = itertools.cycle(_ids)


def one():
    proto.dataReceived(next(_cycle))
    reactor.runUntilCurrent()
    if upconn is None or not upconn.transport.out:
        # annuaire may be async first time
        for _ in range(100):
            reactor.iterate(0.01)
            if upconn is not None and upconn.transport.out:
                break
    upconn.transport.out.clear()
    upconn.dataReceived(answer)
    reactor.runUntilCurrent()
    assert st.out, "no answer"
    out = st.out[-1]
    st.out.clear()
    return out


ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=20000)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--profile", action="store_true")
ap.add_argument("--show", action="store_true")
args = ap.parse_args()
out = one()
if args.show:
    print(out[:600])
    print((work / "access.log").read_text()[-400:])
for _ in range(int(os.environ.get("WARM", "500"))):
    one()
gc.collect()
gc.freeze()
if args.profile:
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(args.n):
        one()
    pr.disable()
    pstats.Stats(pr).sort_stats(os.environ.get("SORT", "tottime")).print_stats(
        int(os.environ.get("LINES", "35"))
    )
else:
    best = []
    for _round in range(args.rounds):
        t = time.process_time()
        for _ in range(args.n):
            one()
        best.append((time.process_time() - t) / args.n * 1e6)
    print("us/exchange rounds:", " ".join(f"{b:.1f}" for b in best), "min", f"{min(best):.1f}")
