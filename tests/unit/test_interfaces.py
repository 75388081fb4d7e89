"""Every seam of the relay is in ``rpn.interfaces`` and every fake the tests use keeps to it.

A fake that drifts from its interface makes unit tests pass against something the relay never
meets; ``verifyObject`` checks each fake's methods and their signatures against the interface.
"""

from __future__ import annotations

import inspect
import io

from prometheus_client import CollectorRegistry
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyObject

from piano.testing import StrictClock
from rpn import interfaces, routing, testing
from rpn.stats import AccessLog, PrometheusStats, StatsFanout

#: Each interface of rpn.interfaces and an instance of each of its fakes and implementations
#: that need no I/O to build.
INSTANCES: dict[str, list[object]] = {
    "IAnnuaireSource": [testing.FakeAnnuaireSource()],
    "ISnapshotStore": [testing.MemorySnapshotStore()],
    "IHttpClient": [testing.FakeHttpClient()],
    "IRoutingExtractor": [
        routing.SoapHeaderExtractor(),
        routing.HttpHeaderExtractor(),
        routing.UrlPathExtractor(),
    ],
    "IRoutingPolicy": list(routing.routing_policies().values()),
    "IStatsSink": [
        PrometheusStats(CollectorRegistry(), StrictClock()),
        AccessLog(io.StringIO()),
        StatsFanout(),
    ],
}


def _interfaces() -> dict[str, InterfaceClass]:
    return {
        name: value
        for name, value in vars(interfaces).items()
        if isinstance(value, InterfaceClass) and value.__module__ == interfaces.__name__
    }


def test_every_seam_has_a_fake_or_an_implementation_checked_here() -> None:
    # IAnnuaire is the cache itself (rpn.annuaire.CachedAnnuaire), verified in test_annuaire.
    assert set(_interfaces()) - set(INSTANCES) <= {"IAnnuaire"}


def test_every_fake_and_implementation_keeps_to_its_interface() -> None:
    for name, instances in INSTANCES.items():
        interface = _interfaces()[name]
        for instance in instances:
            assert verifyObject(interface, instance), (name, type(instance))


def test_no_other_module_of_the_relay_declares_a_zope_interface() -> None:
    import importlib
    import pkgutil

    import rpn

    elsewhere = []
    for info in pkgutil.walk_packages(rpn.__path__, "rpn."):
        module = importlib.import_module(info.name)
        for name, value in inspect.getmembers(module, lambda v: isinstance(v, InterfaceClass)):
            if value.__module__ == info.name and info.name != interfaces.__name__:
                elsewhere.append(f"{info.name}.{name}")
    assert elsewhere == []
