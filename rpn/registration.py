"""Which establishments may speak through the relay, and for which sites.

An establishment is registered as a legal entity (FINESS juridique) with its sites (FINESS
géographiques). A client certificate identifies a site or a legal entity. A message names its
sender pair (legal entity, site); it is accepted only when that pair is registered and the
certificate is that site or that site's legal entity, so that no establishment speaks for
another's site. Each legal entity also has its lifecycle (``rpn.lifecycle``): in qualification
or suspended, it reaches only Mutuelle ANS's fictitious AMCs. Pure logic: the relay asks, this
module answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from roc.reasons import Reason
from rpn.lifecycle import Lifecycle, State, reach_refusal

__all__ = ["Registration"]

_IN_PRODUCTION = Lifecycle()


@dataclass(frozen=True, slots=True)
class Registration:
    """The registered legal entities and their sites."""

    #: Legal entity (FINESS juridique) of each registered site (FINESS géographique).
    entity_of_site: Mapping[str, str] = field(default_factory=dict)
    #: Sites of each registered legal entity.
    sites_of_entity: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Where each legal entity stands on its way to production (absent: in production).
    lifecycle_of_entity: Mapping[str, Lifecycle] = field(default_factory=dict)
    #: The AMC numbers Mutuelle ANS plays: what an entity in qualification may reach.
    simulated_amcs: frozenset[str] = frozenset()
    #: Days an establishment stays under watch after going live (exported for the rules).
    watch_days: int = 30
    #: Every FINESS (legal entity or site) whose state keeps it from real AMCs, computed once
    #: from ``lifecycle_of_entity`` so that an exchange in production asks one set.
    restricted: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        restricted = {
            finess
            for entity, lifecycle in self.lifecycle_of_entity.items()
            if not lifecycle.state.live
            for finess in (entity, *self.sites_of_entity.get(entity, ()))
        }
        object.__setattr__(self, "restricted", frozenset(restricted))

    @classmethod
    def of(
        cls,
        entities: Iterable[tuple[str, Iterable[str]]],
        lifecycles: Mapping[str, Lifecycle] | None = None,
        simulated_amcs: Iterable[str] = (),
        watch_days: int = 30,
    ) -> Registration:
        """From (legal entity, its sites) pairs; ValueError if a site is listed twice.

        *lifecycles* gives each legal entity's state (an entity not named is in production).
        """
        entity_of_site: dict[str, str] = {}
        sites_of_entity: dict[str, frozenset[str]] = {}
        for entity, sites in entities:
            if entity in sites_of_entity:
                raise ValueError(f"legal entity {entity} is registered twice")
            own = frozenset(sites)
            for site in sorted(own):
                other = entity_of_site.get(site)
                if other is not None:
                    raise ValueError(f"site {site} is registered under {other} and {entity}")
                entity_of_site[site] = entity
            sites_of_entity[entity] = own
        lifecycles = dict(lifecycles or {})
        for entity in lifecycles:
            if entity not in sites_of_entity:
                raise ValueError(f"lifecycle given for {entity}, which is not registered")
        return cls(
            entity_of_site, sites_of_entity, lifecycles, frozenset(simulated_amcs), watch_days
        )

    def __len__(self) -> int:
        return len(self.sites_of_entity)

    def knows(self, finess: str) -> bool:
        """Whether *finess* (a certificate's) is a registered site or legal entity."""
        return finess in self.entity_of_site or finess in self.sites_of_entity

    def entity_of(self, finess: str) -> str | None:
        """The legal entity of *finess* (a site's or the entity itself), None if unknown."""
        if finess in self.sites_of_entity:
            return finess
        return self.entity_of_site.get(finess)

    def lifecycle(self, entity: str) -> Lifecycle:
        """Where legal entity *entity* stands (production when not given)."""
        return self.lifecycle_of_entity.get(entity, _IN_PRODUCTION)

    def reach_refusal(self, certificate: str, amc: str) -> tuple[State, Reason] | None:
        """The state that keeps the establishment of *certificate* from *amc*, and why; or
        None when it may reach it."""
        if certificate not in self.restricted:
            return None
        entity = self.entity_of(certificate)
        assert entity is not None  # restricted FINESS are registered
        lifecycle = self.lifecycle(entity)
        reason = reach_refusal(lifecycle, entity, amc, self.simulated_amcs)
        return None if reason is None else (lifecycle.state, reason)

    def sender_refusal(self, certificate: str, legal: str, site: str) -> Reason | None:
        """Why a message naming (*legal*, *site*) may not come with *certificate*, or None.

        The reason names FINESS numbers only (never personal data), so that the
        establishment sees what the relay read and what it expected.
        """
        if not site or not legal:
            missing = "FinessGeographique" if not site else "FinessJuridique"
            return Reason(
                f"the message must name its sender pair: {missing} is missing "
                f"(certificate FINESS {certificate})",
                f"le message doit nommer son couple émetteur : {missing} est absent "
                f"(FINESS du certificat {certificate})",
            )
        registered_entity = self.entity_of_site.get(site)
        if registered_entity is None:
            return Reason(
                f"site {site} named by the message is not registered (certificate {certificate})",
                f"le site {site} nommé par le message n'est pas inscrit (FINESS du certificat "
                f"{certificate})",
            )
        if registered_entity != legal:
            return Reason(
                f"site {site} is registered under legal entity {registered_entity}, "
                f"not {legal} (certificate {certificate})",
                f"le site {site} est inscrit sous l'entité juridique {registered_entity}, "
                f"pas {legal} (FINESS du certificat {certificate})",
            )
        if certificate not in (site, legal):
            return Reason(
                f"certificate FINESS {certificate} is neither site {site} "
                f"nor its legal entity {legal}",
                f"le FINESS du certificat, {certificate}, n'est ni le site {site} ni son "
                f"entité juridique {legal}",
            )
        return None
