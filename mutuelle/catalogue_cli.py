"""``python -m mutuelle.catalogue``: print the case catalogue as lines, Markdown or JSON.

Apart from ``mutuelle.catalogue`` so that the catalogue never imports its renderings
(``mutuelle.catalogue_md``, ``mutuelle.catalogue_json`` import the catalogue).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mutuelle.catalogue import build_catalogue
from mutuelle.catalogue_json import catalogue_json
from mutuelle.catalogue_md import render_markdown
from mutuelle.datafiles import load_data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mutuelle.catalogue", description="Mutuelle ANS case catalogue."
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--markdown", action="store_true", help="print docs/catalogue.md")
    output.add_argument(
        "--json", action="store_true", help="print every case as a JSON array (publishers' suites)"
    )
    parser.add_argument("--data-dir", type=Path, help="data files to use (default: shipped)")
    args = parser.parse_args(argv)
    data = load_data(args.data_dir)
    catalogue = build_catalogue(data)
    if args.markdown:
        sys.stdout.write(render_markdown(data, catalogue))
    elif args.json:
        json.dump(catalogue_json(catalogue), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for case in catalogue:
            print(f"{case.amc_number} {case.name} -> {case.expected_code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
