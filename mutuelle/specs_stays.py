"""The stays and visits the SIM and CLC cases send: lines a hospital's software would bill.

Stays are public-sector unless the sector is OQN: they carry PJ lines (daily tariff, the
ticket modérateur's base) for the nights, and the forfait journalier for every day, discharge
day included. Regulated amounts are ``IN_FORCE`` (resolved from the tariff table).
"""

from __future__ import annotations

import datetime

from mutuelle.care import CareLine, LineCode
from mutuelle.specs import IN_FORCE

_L = CareLine


def pj(days: int, tariff: int, number: int = 1, start: datetime.date | None = None) -> CareLine:
    """*days* days at daily tariff *tariff* (cents), from *start* (default: the stay's)."""
    return _L(number, LineCode.PJ, days, tariff, tariff, start)


def fj(days: int, number: int = 2, start: datetime.date | None = None) -> CareLine:
    """*days* forfaits journaliers at the amount in force, from *start*."""
    return _L(number, LineCode.FJH, days, IN_FORCE, None, start)


#: A five-day public MCO stay (2-6 March 2026): four nights at a 1,200.00 daily tariff, the
#: forfait journalier every day, four nights in a private room at 65.00.
MCO_STAY = (pj(4, 120000), fj(5), _L(3, LineCode.CP, 4, 6500))
#: The same stay without extras.
MCO_PLAIN = MCO_STAY[:2]
PSY_STAY = (pj(4, 70000), fj(5))
SMR_STAY = (pj(4, 45000), fj(5))
HAD_STAY = (pj(5, 18000),)
#: An ex-OQN clinic stay: the clinic's GHS, the surgeon's act (base 300.00), the forfait
#: journalier, and the surgeon's 450.00 fee overrun.
OQN_STAY = (
    _L(1, LineCode.GHS, 1, 150000, 150000),
    _L(2, LineCode.ACT, 1, 30000, 30000),
    fj(5, 3),
    _L(4, LineCode.DEP, 1, 45000, 30000, optam=True),
)
OQN_NON_OPTAM = (*OQN_STAY[:3], _L(4, LineCode.DEP, 1, 45000, 30000, optam=False))
