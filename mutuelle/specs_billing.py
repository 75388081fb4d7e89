"""DRE case specifications: an invoice for a stay's engagement, its ARL, its 578R or 908R.

Each case's beneficiary has a stay (``lines``) that a fresh sandbox already engaged (a seeded
engagement made by a CLC of those lines, with its statement), except the whole-stay case, which
plays IDB, SIM and CLC first. The invoice is derived from the engagement (``InvoiceVariant``),
so its amounts follow the tariffs in force like the CLC's. Rules: ``mutuelle.billing``.
"""

from __future__ import annotations

from mutuelle.billing import ArlOutcome, Rejection
from mutuelle.engagements import EngagementState
from mutuelle.model import CareKind, Sector
from mutuelle.specs import (
    _ALL_SECTORS,
    _D,
    CaseSpec,
    InvoiceVariant,
    RightsTemplate,
    SeedEngagement,
    care_spec,
)
from mutuelle.specs_stays import HAD_STAY, MCO_STAY, OQN_STAY, PSY_STAY, SMR_STAY
from roc.model import RocVersion, Service

_V1, _V2 = RocVersion.V1, RocVersion.V2
_ACTIVE = SeedEngagement(EngagementState.ACTIVE)
_STAYS = {
    Sector.MCO: MCO_STAY,
    Sector.PSY: PSY_STAY,
    Sector.SMR: SMR_STAY,
    Sector.HAD: HAD_STAY,
    Sector.OQN: OQN_STAY,
}
#: Rights that ended on 28 February 2026, before the 2-6 March stay.
_CLOSED_BEFORE = (RightsTemplate(_D(2020, 1, 1), _D(2026, 2, 28), _ALL_SECTORS),)


def _dre(
    suffix: str,
    version: RocVersion,
    sector: Sector,
    description: str,
    rule: str,
    expected: ArlOutcome = ArlOutcome.ACCEPTED,
    engagement: SeedEngagement | None = _ACTIVE,
    invoice: InvoiceVariant = InvoiceVariant.MATCHING,
    **more: object,
) -> CaseSpec:
    return care_spec(
        suffix,
        Service.DRE,
        version,
        sector,
        CareKind.HOSPITALISATION,
        description,
        rule,
        expected,
        _STAYS[sector],
        "CONFORT",
        engagement=engagement,
        invoice=invoice,
        **more,
    )


DRE_SPECS: tuple[CaseSpec, ...] = (
    _dre(
        "SEJOUR_COMPLET",
        _V1,
        Sector.MCO,
        "A whole MCO stay: IDB, SIM, CLC, then the invoice for the CLC's engagement, its ARL, "
        "and two days later (sandbox time) the 578R.",
        "The invoice asks the engaged AMC share line by line: ARL 00, the engagement is "
        "billed; the 578R pays every line in full and the engagement is paid.",
        engagement=None,
        full_stay=True,
    ),
    _dre(
        "PAIEMENT_INTEGRAL",
        _V1,
        Sector.MCO,
        "Invoice an MCO stay already engaged (a fresh sandbox holds its engagement).",
        "Invoice matching the engagement: ARL 00, then a 578R paying every line in full.",
    ),
    _dre(
        "PAIEMENT_INTEGRAL",
        _V2,
        Sector.PSY,
        "Invoice a psychiatric stay already engaged (ROC V2).",
        "As in MCO: ARL 00, then a full 578R.",
    ),
    _dre(
        "PAIEMENT_INTEGRAL",
        _V2,
        Sector.SMR,
        "Invoice a rehabilitation stay already engaged (ROC V2).",
        "ARL 00, then a full 578R.",
    ),
    _dre(
        "PAIEMENT_PARTIEL",
        _V1,
        Sector.MCO,
        "Invoice an engaged MCO stay asking 20.00 more than engaged on the first line.",
        "The AMC pays what it engaged, no more: ARL 00, then a partial 578R; the first line "
        "is paid its engaged share with motif E1 (more than the engaged share).",
        invoice=InvoiceVariant.MORE,
    ),
    _dre(
        "PAIEMENT_PARTIEL",
        _V2,
        Sector.OQN,
        "Invoice an engaged ex-OQN clinic stay asking 20.00 more on the first line (ROC V2).",
        "ARL 00, then a partial 578R, motif E1 on the first line.",
        invoice=InvoiceVariant.MORE,
    ),
    _dre(
        "ENGAGEMENT_INCONNU",
        _V1,
        Sector.MCO,
        "Invoice quoting an engagement number this AMC never gave.",
        "Negative ARL 31 (unknown engagement); nothing is kept, no return follows.",
        ArlOutcome.UNKNOWN_ENGAGEMENT,
        engagement=None,
    ),
    _dre(
        "ENGAGEMENT_INCONNU",
        _V2,
        Sector.HAD,
        "Invoice a home hospitalisation quoting an unknown engagement (ROC V2).",
        "Negative ARL 31.",
        ArlOutcome.UNKNOWN_ENGAGEMENT,
        engagement=None,
    ),
    _dre(
        "FACTURE_EN_DOUBLE",
        _V1,
        Sector.MCO,
        "Send again an invoice number the AMC already received (a fresh sandbox holds it).",
        "Negative ARL 32 (invoice number already received): one invoice, one number.",
        ArlOutcome.DUPLICATE,
        engagement=SeedEngagement(EngagementState.BILLED, invoiced=True),
    ),
    _dre(
        "FACTURE_EN_DOUBLE",
        _V2,
        Sector.SMR,
        "Send again, with VersionROC V2, an invoice number already received.",
        "Negative ARL 32.",
        ArlOutcome.DUPLICATE,
        engagement=SeedEngagement(EngagementState.BILLED, invoiced=True),
    ),
    _dre(
        "DEJA_FACTURE",
        _V1,
        Sector.MCO,
        "Invoice, under a new number, an engagement another invoice already billed.",
        "Negative ARL 33 (engagement already billed): one invoice per engagement.",
        ArlOutcome.ALREADY_BILLED,
        engagement=SeedEngagement(EngagementState.BILLED),
    ),
    _dre(
        "ENGAGEMENT_ANNULE",
        _V1,
        Sector.MCO,
        "Invoice an engagement that was cancelled (DEL).",
        "The ARL accepts the invoice (00); the 908R rejects it: R01, engagement cancelled.",
        engagement=SeedEngagement(EngagementState.CANCELLED),
        rejection=Rejection.CANCELLED,
    ),
    _dre(
        "ENGAGEMENT_ANNULE",
        _V2,
        Sector.PSY,
        "Invoice a cancelled psychiatric engagement (ROC V2).",
        "ARL 00, then 908R R01.",
        engagement=SeedEngagement(EngagementState.CANCELLED),
        rejection=Rejection.CANCELLED,
    ),
    _dre(
        "DROITS_CLOS",
        _V1,
        Sector.MCO,
        "Invoice a stay engaged for a beneficiary whose rights ended on 28 February 2026, "
        "before the stay (ended retroactively after the CLC).",
        "ARL 00, then 908R R02: the beneficiary's rights closed before the stay.",
        rights=_CLOSED_BEFORE,
        rejection=Rejection.RIGHTS_CLOSED,
    ),
    _dre(
        "DROITS_CLOS_V2",
        _V2,
        Sector.MCO,
        "The same with VersionROC V2.",
        "ARL 00, then 908R R02.",
        rights=_CLOSED_BEFORE,
        rejection=Rejection.RIGHTS_CLOSED,
    ),
    _dre(
        "HORS_DELAI",
        _V1,
        Sector.MCO,
        "Invoice an engagement made 91 days before the sandbox was reset.",
        "The invoice must reach the AMC within 90 days of the engagement (sandbox time): ARL "
        "00, then 908R R03.",
        engagement=SeedEngagement(EngagementState.ACTIVE, age_days=91),
        rejection=Rejection.LATE,
    ),
    _dre(
        "HORS_DELAI",
        _V2,
        Sector.OQN,
        "Invoice an ex-OQN engagement made 91 days ago (ROC V2).",
        "ARL 00, then 908R R03.",
        engagement=SeedEngagement(EngagementState.ACTIVE, age_days=91),
        rejection=Rejection.LATE,
    ),
    _dre(
        "AUCUNE_LIGNE_ENGAGEE",
        _V1,
        Sector.MCO,
        "Invoice only a companion's bed, a line the engagement does not hold.",
        "Nothing invoiced matches the engagement: ARL 00, then 908R R04.",
        invoice=InvoiceVariant.UNHELD_LINE,
        rejection=Rejection.NOTHING_PAYABLE,
    ),
)
