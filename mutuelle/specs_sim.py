"""SIM case specifications: the amounts of every rule docs/roc-model.md states (the stays
they send are in ``mutuelle.specs_stays``)."""

from __future__ import annotations

from mutuelle.care import CareLine, CareOutcome, Exemption, LineCode
from mutuelle.engagements import EngagementState
from mutuelle.idb import IdbOutcome
from mutuelle.model import CareKind, Sector
from mutuelle.specs import (
    _ALL_SECTORS,
    _D,
    DEFAULT_START,
    CaseSpec,
    ContractTemplate,
    Relation,
    RightsTemplate,
    SeedEngagement,
    care_spec,
)
from mutuelle.specs_stays import (
    HAD_STAY,
    MCO_PLAIN,
    MCO_STAY,
    OQN_NON_OPTAM,
    OQN_STAY,
    PSY_STAY,
    SMR_STAY,
    fj,
    pj,
)
from roc.model import RocVersion, Service

_L = CareLine
_SIM, _V1, _V2 = Service.SIM, RocVersion.V1, RocVersion.V2
_HOSP, _ACE, _PARTIAL = CareKind.HOSPITALISATION, CareKind.EXTERNAL, CareKind.PARTIAL
_ACCEPTED, _REFUSED = CareOutcome.ACCEPTED, CareOutcome.REFUSED
_CLOSED = (RightsTemplate(_D(2018, 1, 1), _D(2024, 12, 31), _ALL_SECTORS),)

SIM_SPECS: tuple[CaseSpec, ...] = (
    care_spec(
        "PRISE_EN_CHARGE_TOTALE",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A five-day public MCO stay with a private room, for the most generous guarantee "
        "(INTEGRAL).",
        "The AMO pays TauxAMO % of the daily tariff (PJ); the AMC pays the ticket modérateur, "
        "the forfait journalier of the discharge day (the other days' forfaits are imputed on "
        "the ticket modérateur) and the private room within its ceiling: the patient pays "
        "nothing.",
        _ACCEPTED,
        MCO_STAY,
        "INTEGRAL",
    ),
    care_spec(
        "PRISE_EN_CHARGE_TOTALE_V2",
        _SIM,
        _V2,
        Sector.MCO,
        _HOSP,
        "The same MCO stay sent with VersionROC V2.",
        "ROC V2 carries MCO with the same rules as V1.",
        _ACCEPTED,
        MCO_STAY,
        "INTEGRAL",
    ),
    care_spec(
        "PRISE_EN_CHARGE_PARTIELLE",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "The same stay for a beneficiary with the basic guarantee (ESSENTIEL), which does not "
        "cover private rooms.",
        "Each line is computed on its own: the private room is left to the patient, the rest "
        "is covered.",
        _ACCEPTED,
        MCO_STAY,
        "ESSENTIEL",
    ),
    care_spec(
        "IMPUTATION_FORFAIT_JOURNALIER",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "Four nights at a 1,200.00 daily tariff and five forfaits journaliers (ESSENTIEL).",
        "When the ticket modérateur applies, the forfait journalier is imputed on it up to its "
        "amount (CSS L. 174-4): the ticket modérateur of each of the four nights (240.00) "
        "absorbs that day's forfait; only the discharge day's forfait is charged.",
        _ACCEPTED,
        MCO_PLAIN,
        "ESSENTIEL",
    ),
    care_spec(
        "FORFAIT_SUPERIEUR_AU_TICKET",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "Four nights at a low daily tariff (90.00: a ticket modérateur of 18.00 a day, below the "
        "forfait journalier) and five forfaits journaliers (ESSENTIEL).",
        "When the ticket modérateur is below the forfait journalier, it is imputed on the "
        "forfait (CSS L. 174-4): the patient side pays the forfait each day, not both; the "
        "FJH line charges only the difference on the nights.",
        _ACCEPTED,
        (pj(4, 9000), fj(5)),
        "ESSENTIEL",
    ),
    care_spec(
        "CHANGEMENT_TARIF",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A stay from 29 December 2017 to 2 January 2018, across the rise of the forfait "
        "journalier on 1 January 2018, for a patient in ALD (no ticket modérateur to impute "
        "on).",
        "Each day is priced with the amount in force that day: one FJH line per tariff "
        "(DateDebut), 18.00 for the three days of 2017, 20.00 for the two of 2018; the "
        "conformance check refuses one line across the change (FJH_TARIF).",
        _ACCEPTED,
        (
            pj(4, 100000),
            fj(3, 2, _D(2017, 12, 29)),
            fj(2, 3, _D(2018, 1, 1)),
        ),
        "ESSENTIEL",
        exemption=Exemption.ALD,
        start=_D(2017, 12, 29),
        end=_D(2018, 1, 2),
        rights=(RightsTemplate(_D(2016, 1, 1), None, _ALL_SECTORS),),
        reference="SEJ-2017-000999",
    ),
    care_spec(
        "COUVERTURE_50_TM",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "The five-day stay for a contract covering half the ticket modérateur, neither the "
        "forfait journalier nor the private room (DEMI, not a responsible contract).",
        "Partial cover: the AMC pays 50 % of the ticket modérateur; the patient pays the other "
        "half, the discharge day's forfait and the private room.",
        _ACCEPTED,
        MCO_STAY,
        "DEMI",
    ),
    care_spec(
        "EXONERATION_ALD",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A stay related to the patient's affection de longue durée (Exoneration ALD, TauxAMO 100).",
        "ALD exempts from the ticket modérateur (CSS L. 160-14), not from the forfait "
        "journalier: nothing to impute it on, the AMC pays the five forfaits.",
        _ACCEPTED,
        MCO_PLAIN,
        "ESSENTIEL",
        exemption=Exemption.ALD,
    ),
    care_spec(
        "MATERNITE",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A delivery stay (Exoneration MATERNITE, TauxAMO 100) with a private room at 40.00.",
        "Maternity exempts from the ticket modérateur (CSS L. 160-9) and from the forfait "
        "journalier (CSS L. 174-4): no FJH line; the AMC pays the private room within its "
        "ceiling.",
        _ACCEPTED,
        (pj(4, 120000), _L(2, LineCode.CP, 4, 4000)),
        "CONFORT",
        exemption=Exemption.MATERNITY,
    ),
    care_spec(
        "ACCIDENT_TRAVAIL",
        _SIM,
        _V2,
        Sector.MCO,
        _HOSP,
        "A stay after a work accident (Exoneration AT_MP, TauxAMO 100) with a private room, "
        "sent with VersionROC V2.",
        "A work accident exempts from the ticket modérateur and the forfait journalier (CSS "
        "L. 174-4): the AMC pays only the private room.",
        _ACCEPTED,
        (pj(4, 120000), _L(2, LineCode.CP, 4, 6500)),
        "INTEGRAL",
        exemption=Exemption.WORK_ACCIDENT,
    ),
    care_spec(
        "ACCIDENT_TRAVAIL_SANS_EXTRA",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A stay after a work accident (AT_MP) without extras.",
        "The AMO pays everything; nothing is left for the AMC: CodeRetour 08.",
        _REFUSED,
        (pj(4, 120000),),
        "ESSENTIEL",
        exemption=Exemption.WORK_ACCIDENT,
    ),
    care_spec(
        "C2S",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "The five-day stay with a private room for a C2S beneficiary.",
        "The complémentaire santé solidaire pays the ticket modérateur and the forfait "
        "journalier in full (CSS L. 861-3), not the private room: the patient pays it.",
        _ACCEPTED,
        MCO_STAY,
        "C2S",
    ),
    care_spec(
        "CHAMBRE_LIMITE_ANNUELLE",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "The beneficiary's contract (CONFORT) covers a yearly number of private-room days; an "
        "earlier stay this year (a billed engagement a fresh sandbox holds) used all but two.",
        "Private-room cover stops at the yearly day limit: the first two nights are covered "
        "within the ceiling, the last two are the patient's. SIM counts the days earlier "
        "engagements billed, as CLC does.",
        _ACCEPTED,
        (pj(4, 120000), fj(5), _L(3, LineCode.CP, 4, 2500)),
        "CONFORT",
        engagement=SeedEngagement(
            EngagementState.BILLED,
            Relation.OTHER_STAY,
            start=_D(2026, 1, 5),
            end=_D(2026, 2, 27),
            private_room_days_left=2,
        ),
    ),
    care_spec(
        "CHANGEMENT_CONTRAT",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "The five-day stay with a private room; the beneficiary moves from ESSENTIEL to "
        "INTEGRAL on 4 March 2026.",
        "Each day is priced with the contract in force that day: the private room of 2 and 3 "
        "March (ESSENTIEL) is the patient's, that of 4 and 5 March (INTEGRAL) is covered.",
        _ACCEPTED,
        MCO_STAY,
        None,
        contracts=(
            ContractTemplate("ESSENTIEL", None, _D(2026, 3, 3)),
            ContractTemplate("INTEGRAL", _D(2026, 3, 4), None),
        ),
    ),
    care_spec(
        "SECOND_CONTRAT",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "The five-day stay with a private room; the beneficiary holds ESSENTIEL and a "
        "supplementary contract (SURCO) that covers private rooms.",
        "The first contract pays its share, the second tops up what remains within its own "
        "guarantee: here the private room, up to the SURCO ceiling.",
        _ACCEPTED,
        MCO_STAY,
        None,
        contracts=(ContractTemplate("ESSENTIEL"), ContractTemplate("SURCO")),
    ),
    care_spec(
        "HOPITAL_DE_JOUR",
        _SIM,
        _V1,
        Sector.MCO,
        _PARTIAL,
        "A day-hospital session (NatureSoins PARTIEL) at an 800.00 daily tariff.",
        "No forfait journalier in partial hospitalisation (rule FJH_PARTIEL): the AMC pays the "
        "ticket modérateur.",
        _ACCEPTED,
        (pj(1, 80000),),
        "ESSENTIEL",
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    care_spec(
        "PLAFOND_ATTEINT",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A stay with an expensive private room (95.00 a day) and a companion (45.00 a day), "
        "for a CONFORT guarantee.",
        "Extras are covered up to the guarantee's ceiling per day; what exceeds it is the "
        "patient's.",
        _ACCEPTED,
        (*MCO_PLAIN, _L(3, LineCode.CP, 4, 9500), _L(4, LineCode.ACC, 4, 4500)),
        "CONFORT",
    ),
    care_spec(
        "DROITS_FERMES",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A simulation for a beneficiary whose contract ended on 31 December 2024.",
        "SIM and CLC apply IDB's rules first: CodeRetour 02, no statement.",
        IdbOutcome.RIGHTS_CLOSED,
        MCO_STAY,
        None,
        rights=_CLOSED,
    ),
    care_spec(
        "HORS_VERSION_V1",
        _SIM,
        _V1,
        Sector.PSY,
        _HOSP,
        "A psychiatry simulation sent with VersionROC V1.",
        "ROC V1 carries MCO only: the refusal an AMC gives, CodeRetour 06.",
        IdbOutcome.SECTOR_NOT_IN_VERSION,
        PSY_STAY,
        None,
    ),
    care_spec(
        "FORFAIT_JOURNALIER",
        _SIM,
        _V2,
        Sector.PSY,
        _HOSP,
        "A five-day stay in psychiatry, billed by the day (ROC V2).",
        "Psychiatry is billed by the day (PJ, no GHS); its forfait journalier is the "
        "psychiatric one in force (15.00 since 2018), imputed on the ticket modérateur as in "
        "MCO.",
        _ACCEPTED,
        PSY_STAY,
        "ESSENTIEL",
    ),
    care_spec(
        "DROITS_FERMES",
        _SIM,
        _V2,
        Sector.PSY,
        _HOSP,
        "A psychiatry simulation (ROC V2) for a beneficiary whose contract ended on 31 "
        "December 2024.",
        "IDB's rules first: CodeRetour 02.",
        IdbOutcome.RIGHTS_CLOSED,
        PSY_STAY,
        None,
        rights=_CLOSED,
    ),
    care_spec(
        "SANS_FORFAIT_JOURNALIER",
        _SIM,
        _V2,
        Sector.HAD,
        _HOSP,
        "Five days of home hospitalisation (HAD, ROC V2).",
        "There is no forfait journalier in HAD (an FJH line breaks rule FJH_HAD); the AMC pays "
        "the ticket modérateur on the daily tariff.",
        _ACCEPTED,
        HAD_STAY,
        "ESSENTIEL",
    ),
    care_spec(
        "FORFAIT_JOURNALIER",
        _SIM,
        _V2,
        Sector.SMR,
        _HOSP,
        "A five-day stay in rehabilitation (SMR, ROC V2), billed by the day.",
        "SMR is billed by the day (PJ, no GHS); the forfait journalier is the one of MCO.",
        _ACCEPTED,
        SMR_STAY,
        "ESSENTIEL",
    ),
    care_spec(
        "SECTEUR_NON_COUVERT",
        _SIM,
        _V2,
        Sector.SMR,
        _HOSP,
        "An SMR simulation for a contract covering MCO stays only.",
        "IDB's rules first: rights open, not for this sector: CodeRetour 03.",
        IdbOutcome.SECTOR_NOT_COVERED,
        SMR_STAY,
        None,
        rights=(RightsTemplate(_D(2020, 1, 1), None, frozenset({Sector.MCO})),),
    ),
    care_spec(
        "DEPASSEMENTS_HONORAIRES",
        _SIM,
        _V2,
        Sector.OQN,
        _HOSP,
        "An ex-OQN clinic stay: GHS, the surgeon's act (base 300.00) and a 450.00 fee overrun "
        "by an OPTAM surgeon (ROC V2).",
        "In ex-OQN clinics the ticket modérateur is on the GHS and the act; fee overruns (DEP) "
        "are covered up to the guarantee's OPTAM percentage of the base; the AMO pays none.",
        _ACCEPTED,
        OQN_STAY,
        "CONFORT",
    ),
    care_spec(
        "DEPASSEMENTS_NON_OPTAM",
        _SIM,
        _V2,
        Sector.OQN,
        _HOSP,
        "The same stay, the surgeon outside OPTAM (CONFORT, a responsible contract).",
        "A responsible contract covers non-OPTAM overruns at least 20 points of the base below "
        "its OPTAM cover (CSS R. 871-2): CONFORT's cover is capped accordingly.",
        _ACCEPTED,
        OQN_NON_OPTAM,
        "CONFORT",
    ),
    care_spec(
        "DEPASSEMENTS_NON_OPTAM_PLAFOND",
        _SIM,
        _V2,
        Sector.OQN,
        _HOSP,
        "The same stay, the surgeon outside OPTAM, for INTEGRAL, whose contract says more than "
        "the regulation allows.",
        "A responsible contract covers non-OPTAM overruns up to the ceiling in force (100 % of "
        "the base since 2017, CSS R. 871-2), whatever the contract says.",
        _ACCEPTED,
        OQN_NON_OPTAM,
        "INTEGRAL",
    ),
)
