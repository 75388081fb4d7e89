"""The demo annuaire (ANN): which simulated AMC answers where.

Every simulated AMC is listed with one endpoint per service, built from the simulator's
public URL (``https://127.0.0.1:8444`` + ``/roc/IDB``). The demo matches on the AMC number
only; the convention type and secondary criterion are checked for format by the schema.
"""

from __future__ import annotations

from mutuelle.codec import AnnAnswer
from mutuelle.model import Dataset
from roc.model import AmcKey, Service

#: Services the annuaire lists for every simulated AMC, in this order.
LISTED_SERVICES = (Service.IDB, Service.SIM, Service.CLC, Service.DEL)

FOUND = ("00", "AMC trouvée")
UNKNOWN = ("01", "AMC inconnue")


def endpoint_url(public_url: str, service: Service | str) -> str:
    """The URL at which the simulator serves *service*."""
    code = service.value if isinstance(service, Service) else service
    return f"{public_url.rstrip('/')}/roc/{code}"


def look_up(dataset: Dataset, key: AmcKey, public_url: str) -> AnnAnswer:
    """The annuaire's answer about *key*."""
    amc = dataset.amc(key.amc_number)
    if amc is None:
        return AnnAnswer(*UNKNOWN)
    return AnnAnswer(
        *FOUND,
        amc_number=amc.number,
        name=amc.name,
        endpoints=tuple(
            (service.value, endpoint_url(public_url, service)) for service in LISTED_SERVICES
        ),
    )
