"""``python -m mutuelle.qualification --admin URL --sandbox FINESS [--sectors MCO,PSY] [--json]``

Prints where an establishment stands in its qualification suite, as Mutuelle ANS computes it
from the sandbox's journal (``GET <admin>/sandboxes/<FINESS>/qualification``): each step
passed, failed (why, and what to fix) or not yet played. Exit status: 0 qualified, 1 not yet,
2 the admin API could not answer (unreachable, unknown sector...).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO

_STATUS = {"passed": "réussie", "failed": "ÉCHOUÉE", "not_played": "pas encore jouée"}


def fetch(admin: str, sandbox: str, sectors: str, timeout: float = 10.0) -> dict[str, Any]:
    """The progress document; ``RuntimeError`` with a French message when there is none."""
    query = urllib.parse.urlencode({"sectors": sectors})
    url = f"{admin.rstrip('/')}/sandboxes/{urllib.parse.quote(sandbox)}/qualification?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (admin URL)
            document: dict[str, Any] = json.load(answer)
            return document
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise RuntimeError(f"{url} : HTTP {exc.code}, {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"{url} injoignable : {exc}") from None


def render(document: dict[str, Any], out: TextIO) -> None:
    counts = document["counts"]
    out.write(
        f"Suite {document['suite']} (ROC {document['roc_version']}, secteurs "
        f"{', '.join(document['sectors'])}) du bac à sable {document['sandbox']} : "
        f"{counts['passed']}/{counts['total']} étapes réussies"
        f"{' — qualifiée' if document['qualified'] else ''}\n\n"
    )
    for step in document["steps"]:
        relay = "par le RPN" if step["through_relay"] else "directement à Mutuelle ANS"
        out.write(
            f"  [{_STATUS[step['status']]}] {step['id']} : {step['title']}\n"
            f"      cas {step['case']} à l'AMC {step['amc']}, réponse attendue "
            f"{step['expected_code']} ({step['expected_label']}), {relay}"
        )
        if step["attempts"]:
            out.write(f" ; {step['attempts']} tentative(s), la dernière le {step['played_at']}")
        out.write("\n")
        if step["status"] == "failed":
            out.write(f"      raison : {step['reason']}\n      à corriger : {step['fix']}\n")
    if document["unmatched"]:
        out.write("\nÉchanges non conformes hors étapes (les plus récents) :\n")
        for item in document["unmatched"]:
            out.write(f"  {item['time']} {item['service']} : {item['reason']}\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m mutuelle.qualification", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--admin", required=True, help="Mutuelle ANS's admin URL (…/__admin)")
    parser.add_argument("--sandbox", required=True, help="the establishment's FINESS")
    parser.add_argument("--sectors", default="MCO", help="e.g. MCO or MCO,PSY (default MCO)")
    parser.add_argument("--json", action="store_true", help="the document as JSON")
    args = parser.parse_args(argv)
    try:
        document = fetch(args.admin, args.sandbox, args.sectors)
    except RuntimeError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(document, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        render(document, out)
    return 0 if document["qualified"] else 1
