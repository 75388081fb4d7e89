"""``python -m rpn.lifecycle``: show and change where establishments stand, audited.

``show --config FILE [--json]`` lists each registered legal entity with its sites, state,
since and sectors. ``set --config FILE --finess F --state S --by WHO --reason WHY [--since
YYYY-MM-DD] [--dry-run]`` moves legal entity F to state S: it checks the move
(``rpn.lifecycle.TRANSITIONS``), rewrites the configuration file in place keeping its comments
and layout (tomlkit), checks the new file loads, appends one JSON line to
``lifecycle.audit_log`` (who, why, from, to, when) and prints the change. The running relays
apply it on reload (``systemctl reload piano-rpn``), which logs ``lifecycle_changed``.

This is the one documented way a state changes: the indicators' agency page prints this
command rather than writing the relay's configuration itself (docs/raccordement.md).
Exit status: 0 done, 1 refused (move not allowed, bad reason, file would not load), 2 usage
or unreadable configuration.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import tomlkit

from piano.config import ConfigError
from roc.reasons import MAX_DECISION_AUTHOR, MAX_DECISION_REASON, free_text_problem
from rpn.config import RpnConfig, load_config
from rpn.lifecycle import State, transition_problem


class Refused(Exception):
    """The change is not made; the message says why."""


def _entities(config: RpnConfig) -> list[dict[str, Any]]:
    return [
        {
            "finess": e.finess,
            "sites": list(e.sites),
            "state": e.state,
            "since": None if e.since is None else e.since.isoformat(),
            "sectors": list(e.sectors),
        }
        for e in config.establishments.legal_entities
    ]


def show(config: RpnConfig, as_json: bool, out: TextIO) -> None:
    entities = _entities(config)
    if as_json:
        json.dump({"legal_entities": entities}, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    out.write(f"{'FINESS juridique':<17} {'state':<29} {'since':<11} {'sectors':<16} sites\n")
    for e in entities:
        out.write(
            f"{e['finess']:<17} {e['state']:<29} {e['since'] or '-':<11} "
            f"{','.join(e['sectors']):<16} {', '.join(e['sites'])}\n"
        )


def planned_text(
    text: str, config: RpnConfig, finess: str, state: State, since: datetime.date
) -> tuple[str, State]:
    """The configuration *text* with legal entity *finess* moved to *state* since *since*,
    and the state it leaves; ``Refused`` when the move is not allowed."""
    registered = {e.finess: e for e in config.establishments.legal_entities}
    entity = registered.get(finess)
    if entity is None:
        owner = next((e.finess for e in registered.values() if finess in e.sites), None)
        if owner is not None:
            raise Refused(
                f"{finess} is a site of legal entity {owner}: the state is the legal entity's "
                f"(use --finess {owner})"
            )
        raise Refused(f"legal entity {finess} is not registered in this configuration")
    current = State(entity.state)
    problem = transition_problem(current, state)
    if problem:
        raise Refused(problem)
    document = tomlkit.parse(text)
    tables = document["establishments"]["legal_entities"]
    for table in tables:
        if table["finess"] == finess:
            table["state"] = state.value
            table["since"] = since
            break
    return tomlkit.dumps(document), current


def _check_loads(path: Path, text: str) -> None:
    """``Refused`` if *text*, in place of *path*, would not load (paths resolve as there)."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".toml", delete=False) as f:
        f.write(text)
    try:
        load_config(Path(f.name))
    except ConfigError as exc:
        raise Refused(f"the changed file would not load: {exc}") from None
    finally:
        os.unlink(f.name)


def _replace(path: Path, text: str) -> None:
    """Write *text* over *path* atomically, keeping its permissions."""
    mode = path.stat().st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def audit_line(
    finess: str,
    before: State,
    after: State,
    since: datetime.date,
    by: str,
    reason: str,
    config_path: Path,
    now: datetime.datetime,
) -> str:
    return json.dumps(
        {
            "time": now.isoformat(timespec="seconds"),
            "event": "lifecycle_set",
            "finess": finess,
            "from": before.value,
            "to": after.value,
            "since": since.isoformat(),
            "by": by,
            "reason": reason,
            "config": str(config_path),
        },
        ensure_ascii=False,
    )


def set_state(
    path: Path,
    finess: str,
    state: State,
    by: str,
    reason: str,
    since: datetime.date | None,
    dry_run: bool,
    out: TextIO,
    now: datetime.datetime | None = None,
) -> None:
    """Move *finess* to *state* in the file at *path*, audited; ``Refused`` says why not."""
    now = now or datetime.datetime.now(datetime.UTC)
    for value, what, longest in (
        (by, "--by", MAX_DECISION_AUTHOR),
        (reason, "--reason", MAX_DECISION_REASON),
    ):
        problem = free_text_problem(value, what, longest)
        if problem:
            raise Refused(problem)
    config = load_config(path)
    text = path.read_text(encoding="utf-8")
    day = since or now.date()
    changed, before = planned_text(text, config, finess, state, day)
    _check_loads(path, changed)
    out.writelines(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            changed.splitlines(keepends=True),
            str(path),
            f"{path} ({state.value})",
        )
    )
    if dry_run:
        out.write("dry run: nothing written\n")
        return
    audit = config.lifecycle.audit_log
    if audit is None:
        raise Refused(
            "lifecycle.audit_log is not set: a state change must be audited; set it in "
            f"{path} (docs/configuration.md)"
        )
    line = audit_line(finess, before, state, day, by, reason, path, now)
    audit.parent.mkdir(parents=True, exist_ok=True)
    with audit.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    _replace(path, changed)
    out.write(
        f"{finess}: {before.value} -> {state.value} since {day.isoformat()} (audited in "
        f"{audit}).\nApply it: systemctl reload piano-rpn (or kill -HUP the relay's main "
        "process); the relay logs lifecycle_changed.\n"
    )


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rpn.lifecycle", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    shown = commands.add_parser("show", help="each legal entity's state")
    shown.add_argument("--config", type=Path, required=True)
    shown.add_argument("--json", action="store_true")
    moved = commands.add_parser("set", help="move a legal entity to another state, audited")
    moved.add_argument("--config", type=Path, required=True)
    moved.add_argument("--finess", required=True, help="FINESS juridique of the legal entity")
    moved.add_argument("--state", required=True, choices=[s.value for s in State])
    moved.add_argument("--by", required=True, help="who decides (kept in the audit log)")
    moved.add_argument("--reason", required=True, help="why (kept in the audit log)")
    moved.add_argument("--since", type=_date, help="the day the state begins (default today)")
    moved.add_argument("--dry-run", action="store_true", help="print the change only")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.command == "show":
            show(load_config(args.config), args.json, out)
            return 0
        set_state(
            args.config,
            args.finess,
            State(args.state),
            args.by,
            args.reason,
            args.since,
            args.dry_run,
            out,
        )
        return 0
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
