"""The admin endpoint: probes, metrics, and who may read them."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from twisted.internet.address import IPv4Address
from twisted.python.failure import Failure
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from rpn.admin import admin_resource
from rpn.metric_tables import MetricTable


class _InlinePool:
    """Runs "threaded" work at once: the unit tests start no thread."""

    def callInThreadWithCallback(self, on_result: Any, f: Any, *args: Any) -> None:
        try:
            result = f(*args)
        except Exception:  # noqa: BLE001 - handed to the callback like the real pool does
            on_result(False, Failure())
        else:
            on_result(True, result)


class _InlineReactor:
    def getThreadPool(self) -> _InlinePool:
        return _InlinePool()

    def callFromThread(self, f: Any, *args: Any) -> None:
        f(*args)


def get(
    path: bytes, host: str, *, ready: bool = True, networks: tuple[str, ...] = ("127.0.0.0/8",)
) -> tuple[int, bytes]:
    registry = CollectorRegistry()
    Counter("rpn_example_total", "An example.", registry=registry).inc()
    table = MetricTable("rpn_example_table_total", "A table.", "counter", ("finess",))
    table.inc(("990000028",), 2)
    root = admin_resource(registry, lambda: ready, _InlineReactor(), lambda: networks, (table,))
    request = DummyRequest(path.strip(b"/").split(b"/"))
    request.client = IPv4Address("TCP", host, 40000)
    resource = getChildForRequest(root, request)
    body = resource.render(request)
    if isinstance(body, bytes):
        request.write(body)
    return request.responseCode or 200, b"".join(request.written)


def test_probes_and_metrics_answer_loopback_clients() -> None:
    assert get(b"/healthz", "127.0.0.1") == (200, b"ok\n")
    assert get(b"/readyz", "127.0.0.1") == (200, b"ok\n")
    status, body = get(b"/metrics", "127.0.0.1")
    assert status == 200 and b"rpn_example_total 1.0" in body
    assert b'rpn_example_table_total{finess="990000028"} 2.0' in body


def test_readiness_fails_while_the_relay_does_not_accept_exchanges() -> None:
    assert get(b"/readyz", "127.0.0.1", ready=False)[0] == 503
    assert get(b"/healthz", "127.0.0.1", ready=False)[0] == 200


@pytest.mark.parametrize("path", [b"/metrics", b"/healthz", b"/readyz"])
def test_clients_outside_the_allowed_networks_are_forbidden(path: bytes) -> None:
    status, body = get(path, "192.0.2.7")
    assert status == 403
    assert b"rpn_example_total" not in body


def test_a_configured_monitoring_network_is_allowed() -> None:
    status, _ = get(b"/metrics", "192.0.2.7", networks=("127.0.0.0/8", "192.0.2.0/24"))
    assert status == 200
