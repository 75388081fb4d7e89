"""The seams of the relay, in one place: each has an in-memory fake in ``rpn.testing`` (or is
small enough to be its own fake), verified against its interface by
``tests/unit/test_interfaces.py``. The HTTP server's handler (``rpn.http.server.IRequestHandler``)
is a typing protocol beside the server, whose types it names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from twisted.internet.defer import Deferred

    from roc.model import AmcKey, RoutingKey
    from rpn.http.client import Answer
    from rpn.routing import RequestView
    from rpn.stats import ExchangeRecord


@dataclass(frozen=True, slots=True)
class AmcEntry:
    """What the annuaire says of one AMC: its name and one endpoint URL per service offered.

    *endpoints* maps a service code ("IDB") or a service and version ("IDB/V2") to an https URL;
    a version-specific entry wins over the plain one.
    """

    amc_number: str
    name: str
    endpoints: dict[str, str] = field(default_factory=dict)

    def endpoint_for(self, service: str, version: str) -> str | None:
        return self.endpoints.get(f"{service}/{version}") or self.endpoints.get(service)


class IAnnuaireSource(Interface):
    """Where AMC entries come from (the ANN web service, a static file)."""

    def lookup(key: AmcKey) -> Deferred[AmcEntry | None]:
        """The entry for *key*, None when the annuaire says the AMC is unknown.

        Fails (errback) when the source cannot answer (unreachable, malformed answer).
        """


class IAnnuaire(Interface):
    """The relay's view of the annuaire: a source behind a cache policy."""

    def resolve(key: AmcKey) -> Deferred[AmcEntry]:
        """The entry for *key*.

        Fails with ``rpn.errors.RpnFailure`` carrying ``AMC_UNKNOWN`` or
        ``ANNUAIRE_UNAVAILABLE``.
        """

    def fresh(key: AmcKey) -> AmcEntry | None:
        """The entry for *key* if ``resolve`` would give it at once from its cache (and
        counted as ``resolve`` would count it), else None; no Deferred on the usual path."""


class IHttpClient(Interface):
    """Where the annuaire source POSTs its questions (``rpn.http.client.HttpClient``)."""

    def post(
        url: str, headers: Sequence[tuple[bytes, bytes]], body: bytes, max_body: int
    ) -> Deferred[Answer]:
        """The server's whole answer; fails with ``rpn.http.common``'s failures (or
        ``BodyTooLarge`` past *max_body*). Cancelling drops the connection."""


class ISnapshotStore(Interface):
    """Where the annuaire keeps its last-known-good entries across restarts."""

    def load() -> dict[AmcKey, AmcEntry]:
        """The saved entries; empty (never an error) when there are none or they are unreadable."""

    def save(entries: dict[AmcKey, AmcEntry]) -> None:
        """Replace the saved entries with *entries*; raises ``OSError`` when it cannot."""


class IStatsSink(Interface):
    """Where finished exchanges are accounted (Prometheus, the access log, both)."""

    def record(exchange: ExchangeRecord) -> None:
        """Account for one finished exchange."""


class IRoutingExtractor(Interface):
    """Reads the routing key of a request."""

    def extract(request: RequestView) -> RoutingKey:
        """The request's routing key.

        Raises ``RpnFailure`` whose detail names the field and the rule broken, never a value.
        """


class IRoutingPolicy(Interface):
    """A named way of building an extractor from configuration (a Twisted plugin)."""

    name = Attribute("The name configuration selects this policy by, e.g. 'soap-header'.")
    description = Attribute("One line saying where this policy reads the routing key.")

    def build(options: Mapping[str, object]) -> IRoutingExtractor:
        """An extractor configured by *options*; ValueError naming a bad or unknown option."""
