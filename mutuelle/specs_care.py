"""Every case specification (``ALL_SPECS``), in catalogue order, and those of an AMC.

The lists live in ``mutuelle.specs`` (IDB, technical faults), ``mutuelle.specs_sim`` (SIM
stays), ``mutuelle.specs_visits`` (SIM external visits), ``mutuelle.specs_clc`` (CLC, DEL),
``mutuelle.specs_billing`` (DRE) and ``mutuelle.specs_signature`` (signatures); a new list of
cases is added here.
"""

from __future__ import annotations

from mutuelle.specs import SPECS, CaseSpec
from mutuelle.specs_billing import DRE_SPECS
from mutuelle.specs_clc import CLC_SPECS, DEL_SPECS
from mutuelle.specs_signature import SIGNATURE_SPECS
from mutuelle.specs_sim import SIM_SPECS
from mutuelle.specs_visits import VISIT_SPECS

#: SIM, CLC and DEL specifications, in catalogue order.
CARE_SPECS: tuple[CaseSpec, ...] = SIM_SPECS + VISIT_SPECS + CLC_SPECS

#: Every specification, in catalogue order.
ALL_SPECS: tuple[CaseSpec, ...] = SPECS + CARE_SPECS + DEL_SPECS + DRE_SPECS + SIGNATURE_SPECS


def specs_for(
    third_party_payment: bool, specs: tuple[CaseSpec, ...] = ALL_SPECS
) -> tuple[CaseSpec, ...]:
    """The specifications (of *specs*) that apply to an AMC with or without third-party
    payment."""
    return tuple(
        spec
        for spec in specs
        if spec.third_party_payment is None or spec.third_party_payment == third_party_payment
    )
