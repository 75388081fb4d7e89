"""The catalogue of business cases: what a hospital or a publisher sends to get each answer.

A case is named ``<SERVICE>_<OK|KO>_<SECTOR>_<CASE>`` and exists once per simulated AMC it
applies to. Each is reached by a fictitious beneficiary: the case *specification*
(``mutuelle.specs``, ``mutuelle.specs_care``) says what the person's rights must look like and
what to send; the generator
(``mutuelle.generate``) creates one such person per AMC and records it in the data files; the
*catalogue* joins both into concrete cases (``build_catalogue``).

Pure, no I/O. ``python -m mutuelle.catalogue --markdown > docs/catalogue.md``
renders the publishers' reference (``mutuelle.catalogue_md``); ``--json`` the same cases as
data for publishers' suites (``mutuelle.catalogue_json``); the command itself is in
``mutuelle.catalogue_cli``.

A case's request depends on its own specification and beneficiary only (never on its place in
the list), so adding, removing or reordering cases leaves every other request unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from mutuelle.billing import (
    ArlAnswer,
    BillingReturn,
    Invoice,
    InvoiceLine,
    ReturnKind,
    invoice_for,
    receive,
)
from mutuelle.care import (
    CareHistory,
    CareLine,
    CareOutcome,
    CareRequest,
    LineCode,
    Statement,
    compute,
)
from mutuelle.datafiles import SimulatorData, load_data
from mutuelle.decisions import DelRequest, engagement_record
from mutuelle.engagements import Engagement
from mutuelle.idb import IdbRequest
from mutuelle.model import Beneficiary, BeneficiaryKey, CareKind, Cover, Sector
from mutuelle.sandbox import Identification, SandboxSeed
from mutuelle.specs import (
    IN_FORCE,
    UNKNOWN_BENEFICIARY,
    WRONG_MEMBER_NUMBER,
    CaseSpec,
    Family,
    InvoiceVariant,
    MemberNumber,
    Relation,
    SeedEngagement,
)
from mutuelle.specs_care import ALL_SPECS, specs_for
from mutuelle.tariffs import TariffTable
from mutuelle.technical import TechnicalFault
from roc.model import RocVersion, Service
from roc.signature import Defect

#: What a case sends: an IDB, SIM/CLC or DEL request, or a DRE-ES invoice.
CaseRequest = IdbRequest | CareRequest | DelRequest | Invoice


@dataclass(frozen=True, slots=True)
class Case:
    """A concrete case at one AMC: who to send, what to send, what comes back."""

    spec: CaseSpec
    amc_number: str
    #: None when the case is about a beneficiary nobody knows.
    beneficiary: Beneficiary | None
    request: CaseRequest
    #: SIM and CLC cases answering 00, and CLC 09: the statement the answer carries.
    expected_statement: Statement | None = None
    #: What a fresh sandbox holds for the case (the seeded engagement's stay and amounts).
    seeded: Engagement | None = None
    #: DRE: the stay the invoice bills (the CLC request that made, or makes, its engagement).
    stay: CareRequest | None = None
    #: DRE: the ARL and the return (578R or 908R) the invoice gets on a fresh sandbox.
    expected_arl: ArlAnswer | None = None

    @property
    def steps(self) -> tuple[tuple[Service, CaseRequest], ...]:
        """A whole-stay DRE case: the IDB, SIM and CLC to send before the invoice (whose
        ``NumeroEngagement`` is then the CLC answer's)."""
        if not self.spec.full_stay or self.stay is None:
            return ()
        return (
            (Service.IDB, self.stay.rights_question),
            (Service.SIM, self.stay),
            (Service.CLC, self.stay),
        )

    @property
    def expected_return(self) -> BillingReturn | None:
        return None if self.expected_arl is None else self.expected_arl.pending

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def service(self) -> Service:
        return self.spec.service

    @property
    def version(self) -> RocVersion:
        return self.spec.version

    @property
    def sector(self) -> Sector:
        return self.spec.sector

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def rule(self) -> str:
        return self.spec.rule

    @property
    def technical_fault(self) -> TechnicalFault | None:
        return self.spec.technical_fault

    @property
    def expected_code(self) -> str:
        code: str = self.spec.expected.value.code
        return code

    @property
    def expected_label(self) -> str:
        label: str = self.spec.expected.value.label
        return label

    @property
    def engagement_number(self) -> str | None:
        """The engagement a DEL case sends, a seeded engagement's number, or the number a CLC
        answer carries when it is known in advance (a retry, an existing engagement)."""
        if self.service is Service.DRE and isinstance(self.request, Invoice):
            return self.request.engagement_number
        if self.spec.engagement is None and self.service is not Service.DEL:
            return None
        return engagement_number(self.amc_number, self.spec)

    @property
    def expected_engagement_number(self) -> str | None:
        """The NumeroEngagement the answer carries when known in advance (DEL 00, CLC on a
        seeded engagement of the same stay); None otherwise (a new CLC's number)."""
        if self.service is Service.DEL:
            return self.engagement_number if self.expected_code == "00" else None
        if self.service is Service.CLC and self.seeded is not None:
            if self.spec.engagement is not None and self.spec.engagement.relation is not (
                Relation.OTHER_STAY
            ):
                return self.seeded.number
        return None


#: The ``NumeroEngagement`` a whole-stay case's invoice carries as written in the catalogue:
#: replace it with the number the CLC answered.
CLC_ENGAGEMENT_PLACEHOLDER = "NUMERO-DU-CLC"


def invoice_number(amc_number: str, spec: CaseSpec) -> str:
    """A DRE case's invoice number, drawn from the case's name like its engagement's."""
    digest = hashlib.sha256(("FAC/" + spec.name).encode()).hexdigest()[:8].upper()
    return f"FAC-{amc_number}-{digest}"


def engagement_number(amc_number: str, spec: CaseSpec) -> str:
    """The number of the engagement seeded for *spec* (or never given, for the unknown case).

    Drawn from the case's name, so it never changes when other cases come or go.
    """
    if spec.engagement is None:
        return f"ENG-{amc_number}-X99999"
    digest = hashlib.sha256(spec.name.encode()).hexdigest()[:8].upper()
    return f"ENG-{amc_number}-C{digest}"


class Catalogue:
    """Every concrete case, by AMC and name.

    Iterating gives the *business* cases (those with a CodeRetour); ``technical`` holds the
    technical-fault cases, ``signature`` the signature cases, ``all_cases`` all of them.
    """

    def __init__(self, cases: Sequence[Case]) -> None:
        self.all_cases = tuple(cases)
        self.cases = tuple(
            c for c in self.all_cases if c.technical_fault is None and c.spec.signature is None
        )
        self.technical = tuple(c for c in self.all_cases if c.technical_fault is not None)
        self.signature = tuple(c for c in self.all_cases if c.spec.signature is not None)
        self._by_name = {(case.amc_number, case.name): case for case in self.all_cases}
        if len(self._by_name) != len(self.all_cases):
            raise ValueError("two cases share an AMC and a name")
        self._by_key: dict[tuple[str, BeneficiaryKey], list[Case]] = {}
        self._by_nir: dict[tuple[str, str], list[Case]] = {}
        self._faults: dict[tuple[str, BeneficiaryKey], TechnicalFault] = {}
        for case in self.all_cases:
            key = (case.amc_number, case.request.beneficiary)
            self._by_key.setdefault(key, []).append(case)
            self._by_nir.setdefault((case.amc_number, key[1].nir), []).append(case)
            if case.technical_fault is not None:
                self._faults[key] = case.technical_fault

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def get(self, amc_number: str, name: str) -> Case | None:
        return self._by_name.get((amc_number, name))

    def for_amc(self, amc_number: str) -> tuple[Case, ...]:
        return tuple(case for case in self.all_cases if case.amc_number == amc_number)

    def names(self) -> frozenset[str]:
        return frozenset(case.name for case in self.all_cases)

    def technical_fault(self, amc_number: str, key: BeneficiaryKey) -> TechnicalFault | None:
        """The fault a request about this beneficiary triggers, if the person is a fault case."""
        if not self._faults:
            return None
        return self._faults.get((amc_number, key))

    def match(
        self,
        amc_number: str,
        version: RocVersion,
        request: CaseRequest,
        code: str,
        service: Service = Service.IDB,
        signature: Defect | None = None,
    ) -> Case | None:
        """The case an exchange played: same AMC, service, version, beneficiary, answer and
        signature defect (None: a valid or unchecked signature)."""
        sector = getattr(request, "sector", None)
        for case in self._by_key.get((amc_number, request.beneficiary), ()):
            if (
                case.service is service
                and case.version is version
                and (sector is None or case.sector is sector)
                and case.expected_code == code
                and case.technical_fault is None
                and case.spec.signature is signature
            ):
                return case
        return None

    def aimed(
        self,
        amc_number: str,
        version: RocVersion,
        service: Service,
        nir: str,
        birth_date: str | None = None,
    ) -> tuple[str, ...]:
        """The cases a request about *nir* (born *birth_date*, as sent) could be playing at
        this AMC, service and version, whatever it answered; sorted names."""
        names = {
            case.name
            for case in self._by_nir.get((amc_number, nir), ())
            if case.service is service
            and case.version is version
            and (
                birth_date is None or case.request.beneficiary.birth_date.isoformat() == birth_date
            )
        }
        return tuple(sorted(names))

    def match_invoice(
        self, amc_number: str, version: RocVersion, invoice: Invoice, code: str
    ) -> Case | None:
        """The billing case a DRE-ES played (its ARL code): as ``match``, service DRE."""
        return self.match(amc_number, version, invoice, code, Service.DRE)

    def sandbox_seed(self) -> SandboxSeed:
        """What a fresh sandbox holds so that every CLC and DEL case plays as documented."""
        identifications = []
        engagements = []
        returns: list[BillingReturn] = []
        for case in self.all_cases:
            request = case.request
            if case.spec.identified and isinstance(request, CareRequest):
                identifications.append(
                    Identification(
                        case.amc_number,
                        request.beneficiary,
                        request.start,
                        request.end,
                        request.sector,
                    )
                )
            if case.seeded is not None:
                engagements.append(case.seeded)
            seed = case.spec.engagement
            if seed is not None and seed.invoiced and isinstance(request, Invoice):
                returns.append(
                    BillingReturn(
                        ReturnKind.PAYMENT,
                        case.amc_number,
                        request.invoice_number,
                        request.engagement_number,
                        due=0.0,
                        acknowledged=True,
                    )
                )
        return SandboxSeed(tuple(identifications), tuple(engagements), tuple(returns))


def _member(spec: CaseSpec, member_number: str | None) -> str | None:
    return {
        MemberNumber.SENT: member_number,
        MemberNumber.OMITTED: None,
        MemberNumber.WRONG: WRONG_MEMBER_NUMBER,
    }[spec.member_number]


def _resolved(spec: CaseSpec, tariffs: TariffTable) -> tuple[int, tuple[CareLine, ...]]:
    """The AMO rate and lines *spec* sends, regulated amounts taken from *tariffs*."""
    rate = spec.amo_rate
    if rate is None:
        in_force = tariffs.amo_rate(spec.care_kind, spec.start)
        rate = 100 if spec.exemption is not None else in_force or 0
    lines = []
    for line in spec.lines:
        if line.unit_price_cents == IN_FORCE and line.code is LineCode.FJH:
            day = line.start or spec.start
            line = replace(line, unit_price_cents=tariffs.daily_charge(spec.sector, day) or 0)
        lines.append(line)
    return rate, tuple(lines)


def _request(
    spec: CaseSpec,
    amc_number: str,
    key: BeneficiaryKey,
    member_number: str | None,
    tariffs: TariffTable,
) -> CaseRequest:
    sent = _member(spec, member_number)
    if spec.service in (Service.SIM, Service.CLC, Service.DRE):
        rate, lines = _resolved(spec, tariffs)
        return CareRequest(
            beneficiary=key,
            member_number=sent,
            reference=spec.reference,
            start=spec.start,
            end=spec.end,
            sector=spec.sector,
            care_kind=spec.care_kind,
            amo_rate=rate,
            lines=lines,
            exemption=spec.exemption,
        )
    if spec.service is Service.DEL:
        return DelRequest(key, sent, engagement_number(amc_number, spec), "ANNULATION_SEJOUR")
    return IdbRequest(
        beneficiary=key,
        member_number=sent,
        start=spec.start,
        end=spec.end,
        sector=spec.sector,
        care_kind=spec.care_kind,
    )


def _seeded(
    spec: CaseSpec,
    amc_number: str,
    request: CaseRequest,
    cover: Cover,
    tariffs: TariffTable,
) -> Engagement | None:
    """The engagement a fresh sandbox holds for *spec* (its stay and amounts), or None."""
    seed: SeedEngagement | None = spec.engagement
    if seed is None:
        return None
    number = engagement_number(amc_number, spec)
    age = seed.age_days * 86400.0
    if isinstance(request, CareRequest) and seed.relation is not Relation.OTHER_STAY:
        earlier = request
        if seed.relation is Relation.SAME_STAY and len(request.lines) > 1:
            earlier = replace(request, lines=request.lines[:-1])
        record = engagement_record(earlier, amc_number, compute(earlier, cover, tariffs), number)
        return replace(record, state=seed.state, age_at_reset=age)
    start = seed.start or spec.start
    end = seed.end or spec.end
    room_days: tuple[tuple[int, int], ...] = ()
    if seed.private_room_days_left is not None:
        limits = [g.private_room_days_per_year for g in cover.on(spec.start)]
        used = max(0, max(limits, default=0) - seed.private_room_days_left)
        room_days = ((spec.start.year, used),)
    reference = spec.reference + ("-AUTRE" if seed.relation is Relation.OTHER_STAY else "")
    return Engagement(
        number,
        amc_number,
        request.beneficiary,
        reference,
        0,
        created=None,
        state=seed.state,
        start=start,
        end=end,
        care_kind=CareKind.HOSPITALISATION,
        private_room_days=room_days,
        age_at_reset=age,
    )


def _history(seeded: Engagement | None, request: CareRequest) -> CareHistory:
    if seeded is None or seeded.reference == request.reference:
        return CareHistory()
    return CareHistory(dict(seeded.private_room_days))


def _expected_statement(
    spec: CaseSpec,
    request: CaseRequest,
    cover: Cover,
    data: SimulatorData,
    seeded: Engagement | None,
) -> Statement | None:
    if not isinstance(request, CareRequest):
        return None
    if spec.expected is CareOutcome.ENGAGEMENT_EXISTS or (
        spec.expected is CareOutcome.ACCEPTED
        and seeded is not None
        and seeded.statement is not None
    ):
        return None if seeded is None else seeded.statement
    if spec.expected is CareOutcome.ACCEPTED:
        return compute(request, cover, data.tariffs, _history(seeded, request))
    return None


def _billing_case(
    spec: CaseSpec,
    amc_number: str,
    person: Beneficiary,
    stay: CaseRequest,
    cover: Cover,
    data: SimulatorData,
) -> Case:
    """A DRE case: the stay's engagement (seeded, or made by the whole stay's CLC), the
    invoice the variant asks, and the ARL and return the rules give on a fresh sandbox."""
    assert isinstance(stay, CareRequest)
    statement = compute(stay, cover, data.tariffs)
    seed: SeedEngagement | None = spec.engagement
    if spec.full_stay:
        number = CLC_ENGAGEMENT_PLACEHOLDER
    else:
        number = engagement_number(amc_number, spec)
    seeded = None
    if seed is not None:
        made = engagement_record(stay, amc_number, statement, number)
        seeded = replace(made, state=seed.state, age_at_reset=seed.age_days * 86400.0)
    invoice = invoice_for(
        stay,
        statement,
        number,
        invoice_number(amc_number, spec),
        2000 if spec.invoice is InvoiceVariant.MORE else 0,
    )
    if spec.invoice is InvoiceVariant.UNHELD_LINE:
        line = InvoiceLine(len(stay.lines) + 1, LineCode.ACC, 3000)
        invoice = replace(invoice, lines=(line,))
    # On a fresh sandbox (reset at time 0), or after the whole stay's CLC.
    engaged = seeded
    if spec.full_stay:
        engaged = replace(engagement_record(stay, amc_number, statement, number), created=0.0)
    elif engaged is not None:
        engaged = replace(engaged, created=-engaged.age_at_reset)
    duplicate = seed is not None and seed.invoiced
    arl = receive(invoice, amc_number, engaged, duplicate, data.dataset, 0.0)
    return Case(spec, amc_number, person, invoice, None, seeded, stay, arl)


def build_catalogue(data: SimulatorData, specs: tuple[CaseSpec, ...] = ALL_SPECS) -> Catalogue:
    """The concrete cases of every AMC in *data*, for the case specifications *specs*.

    Raises ValueError when the data lacks the beneficiary of a case (regenerate the data).
    """
    cases = []
    for amc in data.dataset.amcs:
        for spec in specs_for(amc.third_party_payment, specs):
            if spec.family is Family.NOBODY:
                request = _request(spec, amc.number, UNKNOWN_BENEFICIARY, None, data.tariffs)
                cases.append(Case(spec, amc.number, None, request))
                continue
            key = data.case_beneficiaries.get((amc.number, spec.name))
            person = None if key is None else data.dataset.beneficiary(amc.number, key)
            if key is None or person is None:
                raise ValueError(f"no beneficiary reaches case {spec.name} at AMC {amc.number}")
            request = _request(spec, amc.number, key, person.member_number, data.tariffs)
            cover = data.dataset.cover_of(person)
            if spec.service is Service.DRE:
                cases.append(_billing_case(spec, amc.number, person, request, cover, data))
                continue
            seeded = _seeded(spec, amc.number, request, cover, data.tariffs)
            statement = _expected_statement(spec, request, cover, data, seeded)
            cases.append(Case(spec, amc.number, person, request, statement, seeded))
    return Catalogue(cases)


def default_catalogue() -> Catalogue:
    """The catalogue of the shipped data."""
    return build_catalogue(load_data())


if __name__ == "__main__":  # ``python -m mutuelle.catalogue``: the command lives apart
    from mutuelle.catalogue_cli import main

    raise SystemExit(main())
