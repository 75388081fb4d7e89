"""A suite as files: one request file per step and a TOML manifest, ``suite.toml``.

A publisher's non-regression run (``python -m mutuelle.replay``) plays the steps; a suite is
written by ``python -m mutuelle.suite export`` (the whole catalogue), recorded, or by hand.
The manifest::

    [suite]
    name = "catalogue"

    [[steps]]
    id = "990000101/CLC_OK_MCO_ENGAGEMENT"   # unique
    file = "requests/0001.xml"               # relative to the suite's directory
    service = "CLC"                          # IDB, SIM, CLC, DEL or DRE
    chain = "c1"                             # steps of one chain play in order (default: own)
    capture = { engagement = "NumeroEngagement" }   # variable <- first element of that name
    [steps.expect]
    status = 200                             # HTTP status (default 200)
    code = "00"                              # CodeRetour
    label = "..."                            # LibelleRetour
    totals = { amc = "126.00" }              # Total block: charged amo_base amo amc patient
    lines = [{ number = 1, amc = "126.00" }] # Decompte lines, by number
    fault = "MUT-400-SIGNATURE"              # the fault's code (SOAP Fault detail Code)

A request file may use ``${name}`` for a variable captured earlier in its chain. Pure: parsing,
checking and comparing; reading files and the network are the callers'.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from roc.model import Service
from roc.xmlsafe import MalformedXml, UnsafeXml, parse_document

MANIFEST = "suite.toml"
#: Expected amount names -> the answer's element names.
AMOUNT_ELEMENTS = {
    "charged": "MontantTotal",
    "amo_base": "BaseRemboursement",
    "amo": "PartAMO",
    "amc": "PartAMC",
    "patient": "ResteACharge",
}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_EXPECT_KEYS = frozenset({"status", "code", "label", "totals", "lines", "fault"})
_STEP_KEYS = frozenset(
    {"id", "file", "service", "chain", "capture", "expect", "description", "sign"}
)


class SuiteError(ValueError):
    """A suite that cannot be played: its message names the step and the key."""


@dataclass(frozen=True, slots=True)
class Expectation:
    status: int = 200
    code: str | None = None
    label: str | None = None
    totals: Mapping[str, str] = field(default_factory=dict)
    #: line number -> amount name -> euros
    lines: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    file: str
    service: Service
    chain: str
    expect: Expectation
    capture: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    #: The request is signed at replay, after its variables are replaced (``--sign-cert``).
    sign: bool = False


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    steps: tuple[Step, ...]

    def chains(self) -> list[list[Step]]:
        """The steps grouped by chain, each in manifest order, chains by first appearance."""
        grouped: dict[str, list[Step]] = {}
        for step in self.steps:
            grouped.setdefault(step.chain, []).append(step)
        return list(grouped.values())


@dataclass(frozen=True, slots=True)
class Observed:
    """What came back for a step: an answer read, or why there was none to read."""

    status: int | None = None
    code: str | None = None
    label: str | None = None
    totals: Mapping[str, str] = field(default_factory=dict)
    lines: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    fault: str | None = None
    #: Values of the elements a step captures from, by element name.
    values: Mapping[str, str] = field(default_factory=dict)
    #: Set when nothing could be read: connection failed, timeout, not SOAP.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    what: str
    expected: str
    observed: str


def _fail(where: str, message: str) -> SuiteError:
    return SuiteError(f"{where}: {message}")


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, "must be a non-empty string")
    return value


def _amounts(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(where, "must be a table of amounts")
    out = {}
    for name, amount in value.items():
        if name not in AMOUNT_ELEMENTS:
            raise _fail(f"{where}.{name}", f"unknown amount (one of {', '.join(AMOUNT_ELEMENTS)})")
        out[name] = _str(amount, f"{where}.{name}")
    return out


def _expectation(value: object, where: str) -> Expectation:
    if not isinstance(value, dict):
        raise _fail(where, "must be a table")
    unknown = set(value) - _EXPECT_KEYS
    if unknown:
        raise _fail(f"{where}.{sorted(unknown)[0]}", "unknown key")
    status = value.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _fail(f"{where}.status", "must be an HTTP status")
    lines: dict[int, dict[str, str]] = {}
    raw_lines = value.get("lines", [])
    if not isinstance(raw_lines, list):
        raise _fail(f"{where}.lines", "must be an array of tables")
    for index, line in enumerate(raw_lines):
        at = f"{where}.lines[{index}]"
        if not isinstance(line, dict) or not isinstance(line.get("number"), int):
            raise _fail(at, "must be a table with an integer number")
        lines[line["number"]] = _amounts({k: v for k, v in line.items() if k != "number"}, at)
    optional = {k: _str(value[k], f"{where}.{k}") for k in ("code", "label", "fault") if k in value}
    return Expectation(
        status=status,
        code=optional.get("code"),
        label=optional.get("label"),
        totals=_amounts(value.get("totals", {}), f"{where}.totals"),
        lines=lines,
        fault=optional.get("fault"),
    )


def parse_manifest(data: Mapping[str, Any]) -> Suite:
    """The suite a parsed manifest describes, or SuiteError naming what is wrong."""
    head = data.get("suite", {})
    if not isinstance(head, dict):
        raise _fail("suite", "must be a table")
    raw = data.get("steps")
    if not isinstance(raw, list) or not raw:
        raise _fail("steps", "the suite has no [[steps]]")
    steps: list[Step] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"steps[{index}]"
        if not isinstance(item, dict):
            raise _fail(where, "must be a table")
        unknown = set(item) - _STEP_KEYS
        if unknown:
            raise _fail(f"{where}.{sorted(unknown)[0]}", "unknown key")
        step_id = _str(item.get("id"), f"{where}.id")
        if step_id in seen:
            raise _fail(f"{where}.id", f"{step_id} appears twice")
        seen.add(step_id)
        where = f"step {step_id}"
        file = _str(item.get("file"), f"{where}.file")
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise _fail(f"{where}.file", "must be a path inside the suite's directory")
        service_name = _str(item.get("service"), f"{where}.service")
        try:
            service = Service(service_name)
        except ValueError:
            names = ", ".join(s.value for s in Service)
            raise _fail(f"{where}.service", f"{service_name!r} is not one of {names}") from None
        capture = item.get("capture", {})
        if not isinstance(capture, dict):
            raise _fail(f"{where}.capture", "must be a table variable = element name")
        for name, element in capture.items():
            if not _NAME.match(name):
                raise _fail(f"{where}.capture.{name}", "not a variable name")
            _str(element, f"{where}.capture.{name}")
        steps.append(
            Step(
                id=step_id,
                file=file,
                service=service,
                chain=str(item.get("chain", step_id)),
                expect=_expectation(item.get("expect", {}), f"{where}.expect"),
                capture=dict(capture),
                description=str(item.get("description", "")),
                sign=item.get("sign", False) is True,
            )
        )
    return Suite(name=str(head.get("name", "suite")), steps=tuple(steps))


def load_suite(directory: Path) -> Suite:
    """The suite in *directory*; every request file must exist."""
    path = directory / MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SuiteError(f"{path}: cannot be read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{path}: not valid TOML ({e})") from None
    suite = parse_manifest(data)
    for step in suite.steps:
        if not (directory / step.file).is_file():
            raise SuiteError(f"step {step.id}.file: {step.file} is missing")
    return suite


def substitute(template: bytes, variables: Mapping[str, str], step_id: str) -> bytes:
    """*template* with each ``${name}`` replaced; an unknown name is a SuiteError."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise SuiteError(f"step {step_id}: variable ${{{name}}} was not captured before")
        return variables[name]

    return _VARIABLE.sub(replace, template.decode("utf-8")).encode("utf-8")


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _amounts_of(element: etree._Element) -> dict[str, str]:
    texts = {_local(child.tag): (child.text or "") for child in element}
    return {name: texts[tag] for name, tag in AMOUNT_ELEMENTS.items() if tag in texts}


def read_answer(status: int, body: bytes, wanted: Sequence[str] = ()) -> Observed:
    """What an answer says, whatever its service; not SOAP is an error, not an exception."""
    try:
        root = parse_document(body, max_bytes=16 << 20)
    except (MalformedXml, UnsafeXml) as e:
        return Observed(status=status, error=f"HTTP {status}, not a SOAP answer: {e}")
    if _local(root.tag) != "Envelope":
        return Observed(status=status, error=f"HTTP {status}, not a SOAP envelope")
    code = label = fault = None
    totals: dict[str, str] = {}
    lines: dict[int, dict[str, str]] = {}
    values: dict[str, str] = {}
    in_fault = False
    for element in root.iter():
        name = _local(element.tag)
        if name == "Fault":
            in_fault = True
        elif in_fault and name == "Code" and fault is None and len(element) == 0:
            fault = (element.text or "").strip()
        elif name == "CodeRetour" and code is None:
            code = element.text or ""
        elif name == "LibelleRetour" and label is None:
            label = element.text or ""
        elif name == "Total" and not totals:
            totals = _amounts_of(element)
        elif name == "Ligne":
            number = next((c.text for c in element if _local(c.tag) == "NumeroLigne"), None)
            if number is not None and number.strip().isdigit():
                lines[int(number)] = _amounts_of(element)
        if name in wanted and name not in values:
            values[name] = (element.text or "").strip()
    return Observed(status, code, label, totals, lines, fault, values)


def compare(expect: Expectation, observed: Observed) -> list[Difference]:
    """Every way *observed* is not what *expect* says (empty: the step passed)."""
    if observed.error is not None:
        return [Difference("answer", _summary(expect), observed.error)]
    out = []
    if observed.status != expect.status:
        out.append(Difference("status", str(expect.status), str(observed.status)))
    for what, wanted, got in (
        ("code", expect.code, observed.code),
        ("label", expect.label, observed.label),
        ("fault", expect.fault, observed.fault),
    ):
        if wanted is not None and wanted != got:
            out.append(Difference(what, wanted, "-" if got is None else got))
    for name, amount in expect.totals.items():
        got = observed.totals.get(name)
        if got != amount:
            out.append(Difference(f"totals.{name}", amount, got or "-"))
    for number, amounts in expect.lines.items():
        line = observed.lines.get(number, {})
        for name, amount in amounts.items():
            if line.get(name) != amount:
                out.append(Difference(f"line {number}.{name}", amount, line.get(name) or "-"))
    return out


def _summary(expect: Expectation) -> str:
    parts = [f"HTTP {expect.status}"]
    if expect.code is not None:
        parts.append(f"code {expect.code}")
    if expect.fault is not None:
        parts.append(f"fault {expect.fault}")
    return ", ".join(parts)


# -- writing -----------------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _expect_table(expect: Expectation) -> dict[str, object]:
    table: dict[str, object] = {"status": expect.status}
    for key in ("code", "label", "fault"):
        value = getattr(expect, key)
        if value is not None:
            table[key] = value
    if expect.totals:
        table["totals"] = dict(expect.totals)
    if expect.lines:
        table["lines"] = [{"number": n, **amounts} for n, amounts in sorted(expect.lines.items())]
    return table


def manifest_text(suite: Suite, comment: str = "") -> str:
    """*suite*'s ``suite.toml``; ``parse_manifest(tomllib.loads(...))`` gives *suite* back."""
    out = [f"# {line}" for line in comment.splitlines()]
    out += ["[suite]", f"name = {_toml_value(suite.name)}", ""]
    for step in suite.steps:
        out.append("[[steps]]")
        out.append(f"id = {_toml_value(step.id)}")
        out.append(f"file = {_toml_value(step.file)}")
        out.append(f"service = {_toml_value(step.service.value)}")
        out.append(f"chain = {_toml_value(step.chain)}")
        if step.description:
            out.append(f"description = {_toml_value(step.description)}")
        if step.sign:
            out.append("sign = true")
        if step.capture:
            out.append(f"capture = {_toml_value(dict(step.capture))}")
        out.append("[steps.expect]")
        out += [f"{k} = {_toml_value(v)}" for k, v in _expect_table(step.expect).items()]
        out.append("")
    return "\n".join(out)


def write_suite(
    directory: Path, suite: Suite, files: Mapping[str, bytes], comment: str = ""
) -> None:
    """Write *suite*'s manifest and its request *files* (name -> bytes) under *directory*."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (directory / MANIFEST).write_text(manifest_text(suite, comment), encoding="utf-8")
