"""SIM case specifications of external visits (NatureSoins ACE): acts, the flat
participation on heavy acts, exemptions."""

from __future__ import annotations

from mutuelle.care import CareLine, CareOutcome, Exemption, LineCode
from mutuelle.model import CareKind, Sector
from mutuelle.specs import DEFAULT_START, CaseSpec, care_spec
from roc.model import RocVersion, Service

_L = CareLine
_SIM, _V1 = Service.SIM, RocVersion.V1
_ACE = CareKind.EXTERNAL
_ACCEPTED, _REFUSED = CareOutcome.ACCEPTED, CareOutcome.REFUSED

VISIT_SPECS: tuple[CaseSpec, ...] = (
    care_spec(
        "ACTE_EXTERNE",
        _SIM,
        _V1,
        Sector.MCO,
        _ACE,
        "An external consultation (30.00).",
        "External acts: the AMO pays the rate in force for practitioners' fees (70 %); the AMC "
        "pays the ticket modérateur.",
        _ACCEPTED,
        (_L(1, LineCode.ACT, 1, 3000, 3000),),
        "ESSENTIEL",
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    care_spec(
        "PARTICIPATION_FORFAITAIRE",
        _SIM,
        _V1,
        Sector.MCO,
        _ACE,
        "A heavy external act (150.00, above the 120.00 threshold in force).",
        "The flat participation in force (24.00 since 2019) replaces the ticket modérateur: "
        "charged 150.00, the AMO pays 150.00 minus it, the AMC pays it when the guarantee "
        "covers it (CSS R. 160-16).",
        _ACCEPTED,
        (_L(1, LineCode.ACT, 1, 15000, 15000),),
        "CONFORT",
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    care_spec(
        "ACTES_CUMULES_PARTICIPATION",
        _SIM,
        _V1,
        Sector.MCO,
        _ACE,
        "Two acts in one external visit (80.00 and 50.00): neither alone reaches the "
        "threshold, together they do.",
        "Acts of one visit count together: the flat participation replaces the ticket "
        "modérateur of both and is taken on the larger act.",
        _ACCEPTED,
        (_L(1, LineCode.ACT, 1, 8000, 8000), _L(2, LineCode.ACT, 1, 5000, 5000)),
        "CONFORT",
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    care_spec(
        "PARTICIPATION_NON_COUVERTE",
        _SIM,
        _V1,
        Sector.MCO,
        _ACE,
        "The heavy external act (150.00) for a contract that does not cover the flat "
        "participation (DEMI).",
        "No ticket modérateur is left and the flat participation is not covered: the AMC pays "
        "nothing, CodeRetour 08.",
        _REFUSED,
        (_L(1, LineCode.ACT, 1, 15000, 15000),),
        "DEMI",
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    care_spec(
        "REFUS_AUCUNE_PART_AMC",
        _SIM,
        _V1,
        Sector.MCO,
        _ACE,
        "A consultation related to the patient's ALD (Exoneration ALD, TauxAMO 100).",
        "The AMC share never exceeds what the AMO leaves: nothing is left, so the AMC refuses "
        "(CodeRetour 08).",
        _REFUSED,
        (_L(1, LineCode.ACT, 1, 2500, 2500),),
        "ESSENTIEL",
        exemption=Exemption.ALD,
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
)
