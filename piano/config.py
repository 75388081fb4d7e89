"""TOML configuration into frozen dataclasses, with errors that name the offending key.

Each service declares its configuration as nested frozen dataclasses whose fields carry
``setting(...)`` metadata (help text and an optional check). ``load`` walks the dataclass
tree, rejects unknown keys and bad values with their dotted path before anything listens,
and ``describe`` renders the same schema for the configuration reference.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message starts with its path."""


Check = Callable[[Any], "str | None"]


def setting(
    help: str,
    default: Any = dataclasses.MISSING,
    check: Check | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with help text and an optional *check* returning an error or None."""
    metadata = {"help": help, "check": check}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def positive(value: Any) -> str | None:
    if not math.isfinite(value):
        return "must be a finite number"
    return None if value > 0 else "must be > 0"


def non_negative(value: Any) -> str | None:
    if not math.isfinite(value):
        return "must be a finite number"
    return None if value >= 0 else "must be >= 0"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _date(value: Any, path: str) -> datetime.date:
    """A TOML date (``2026-12-01``) or the same as a string."""
    if isinstance(value, datetime.datetime):
        raise ConfigError(f"{path}: must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{path}: must be a date (YYYY-MM-DD)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, value: Any, path: str, base: Path) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, path, base)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: must be a table")
        return _load(tp, value, path, base)
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: must be a file path")
        p = Path(value)
        return p if p.is_absolute() else Path(os.path.normpath(base / p))
    if tp is datetime.date:
        return _date(value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: must be a string")
        return value
    if origin in (tuple, list):
        item_type = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: must be a list")
        return tuple(_convert(item_type, v, f"{path}[{i}]", base) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: must be a table")
        dict_args = typing.get_args(tp)
        value_type = dict_args[1] if dict_args else Any
        if value_type is Any:
            return dict(value)
        return {k: _convert(value_type, v, _join(path, k), base) for k, v in value.items()}
    if tp is Any:
        return value
    raise TypeError(f"{path}: unsupported setting type {tp!r}")  # a programming error


def _load(cls: type[T], data: dict[str, Any], path: str, base: Path) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(path, unknown[0])}: unknown key (known: {', '.join(sorted(fields))})"
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        where = _join(path, name)
        if name in data:
            value = _convert(hints[name], data[name], where, base)
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        elif dataclasses.is_dataclass(hints[name]):
            value = _convert(hints[name], {}, where, base)
        else:
            raise ConfigError(f"{where}: required")
        check = f.metadata.get("check")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{where}: {problem}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{path}{'.' if path else ''}{exc}") from None


def load(cls: type[T], data: dict[str, Any], base: Path | None = None) -> T:
    """Build *cls* from parsed TOML *data*; relative paths resolve against *base*."""
    return _load(cls, data, "", base or Path.cwd())


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed TOML file at *path*; ConfigError names the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def load_file(cls: type[T], path: Path) -> T:
    """Read and validate the TOML file at *path* into *cls*."""
    return load(cls, read_toml(path), path.parent.resolve())


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (tuple, list):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "table"
    names: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
    names |= {Path: "path", datetime.date: "date"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def describe(cls: type[Any], path: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, help) for every setting of *cls*, depth first."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        where = _join(path, f.name)
        if dataclasses.is_dataclass(tp):
            yield from describe(tp, where)  # type: ignore[arg-type]
            continue
        item = typing.get_args(tp)[0] if typing.get_origin(tp) in (tuple, list) else None
        if item is not None and dataclasses.is_dataclass(item):
            # A list of tables: the list itself, then the keys of each entry.
            yield where, "list of tables", "[]", f.metadata.get("help", "")
            yield from describe(item, f"{where}[]")  # type: ignore[arg-type]
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default) if f.default is not None else "(none)"
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        yield where, _type_name(tp), default, f.metadata.get("help", "")
