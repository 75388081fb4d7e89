"""High-cardinality metric families kept as plain dicts and rendered by hand.

A relay serving 3,000 establishments and 400 AMCs holds hundreds of thousands of
per-establishment series. Through prometheus_client each increment costs tens of
microseconds on the exchange path and a scrape takes seconds; here an increment is a dict
update and the text exposition is written straight from the dict (label text cached per
series). Label values come from closed sets (allow-list FINESS, codes), and are escaped anyway.
"""

from __future__ import annotations

from collections.abc import Iterable


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(float(value))


class MetricTable:
    """One metric family: label values -> number, with Prometheus text exposition."""

    def __init__(self, name: str, help_text: str, kind: str, labels: tuple[str, ...]) -> None:
        if kind not in ("counter", "gauge"):
            raise ValueError(f"{name}: kind must be counter or gauge")
        self.name = name
        self.help_text = help_text
        self.kind = kind
        self.labels = labels
        self._values: dict[tuple[str, ...], float] = {}
        self._series: dict[tuple[str, ...], str] = {}

    def _series_text(self, key: tuple[str, ...]) -> str:
        text = self._series.get(key)
        if text is None:
            pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(self.labels, key, strict=True))
            text = self._series[key] = f"{self.name}{{{pairs}}} "
        return text

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        values = self._values
        if key in values:
            values[key] += amount
        else:
            self._series_text(key)
            values[key] = amount

    def set(self, key: tuple[str, ...], value: float) -> None:
        if key not in self._values:
            self._series_text(key)
        self._values[key] = value

    def get(self, key: tuple[str, ...]) -> float | None:
        return self._values.get(key)

    def __len__(self) -> int:
        return len(self._values)

    def exposition(self) -> str:
        """The family in Prometheus text format 0.0.4 (safe to call from another thread)."""
        items = list(self._values.items())  # one C-level copy: consistent under the GIL
        series = self._series
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} {self.kind}"]
        lines.extend(series[key] + _number(value) for key, value in items)
        return "\n".join(lines) + "\n"


def exposition(tables: Iterable[MetricTable]) -> bytes:
    return "".join(table.exposition() for table in tables).encode()
