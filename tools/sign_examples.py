"""``python -m tools.sign_examples``: write ``examples/signed/``, the examples signed.

Every example request with a routing block (``examples/*.xml`` but the annuaire's) is signed
with ``roc.signature`` by hospital A's site certificate (FINESS 990000028) from a CA made for
the examples (``tools.devpki``, ten years); the CA's certificate is written as
``examples/signed/ca.pem``, and no private key is kept: regenerating makes a new CA. A unit
test checks that each signed file verifies against that CA and carries the same request as
its unsigned example.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mutuelle.examples import ANN_EXAMPLE
from roc.signature import sign
from tools.devpki import HOSPITAL_A, issue, make_ca
from tools.signing import pem_of

ROOT = Path(__file__).resolve().parents[1]
VALIDITY = datetime.timedelta(days=3650)


def signed_examples(examples: Path) -> dict[str, bytes]:
    """The signed files (name -> bytes), the CA's certificate as ``ca.pem``."""
    now = datetime.datetime.now(datetime.UTC)
    ca = make_ca("PiANO examples CA (fictitious)", now)
    signer = issue(
        ca,
        "CH Fictif A - ROC (exemples)",
        client=True,
        finess=HOSPITAL_A["site"],
        organisation="Centre hospitalier fictif A",
        not_after=now + VALIDITY,
    )
    cert, key = pem_of(signer)
    files = {"ca.pem": ca.certificate.public_bytes(serialization.Encoding.PEM)}
    for path in sorted(examples.glob("*.xml")):
        if path.name != ANN_EXAMPLE:
            files[path.name] = sign(path.read_bytes(), cert, key)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=ROOT / "examples")
    args = parser.parse_args(argv)
    out = args.examples / "signed"
    out.mkdir(exist_ok=True)
    for name, content in signed_examples(args.examples).items():
        (out / name).write_bytes(content)
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
