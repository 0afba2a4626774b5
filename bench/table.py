"""The one benchmark table: rows, their text and JSON forms, and comparing two runs.

Every bench module gives its figures as :class:`Row` values; ``python -m
bench`` (bench/__main__.py) collects them, prints :func:`render` and writes
:func:`to_json`, and ``--compare OLD.json`` prints :func:`compare`. No timing
here: this module only shapes figures, so tests/test_bench_table.py checks it
without starting a server.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

Op = Literal[">=", "<=", "<"]


@dataclasses.dataclass(frozen=True)
class Goal:
    """A bound on a row's ratio (or, for a row without a baseline, on its value)."""

    op: Op
    value: float
    text: str  # as the issue states it: ">= 0.5", "<= 1.5x", "< 60 s"

    def met(self, figure: float) -> bool:
        if math.isnan(figure):
            return False
        if self.op == ">=":
            return figure >= self.value
        if self.op == "<=":
            return figure <= self.value
        return figure < self.value


@dataclasses.dataclass(frozen=True)
class Row:
    """One measure: Kluis beside a baseline measured in the same run.

    ``ratio`` is what the goal is about (Kluis / baseline for rates, the
    inverse sense for costs is stated in ``measure``); for a row without a
    baseline the goal applies to ``kluis`` itself. ``cpu_ms`` is the
    server's CPU per request (baseline, Kluis) for serving measures.
    ``spread`` is the lowest and highest ratio over the rounds.
    """

    measure: str
    unit: str
    kluis: float
    goal: Goal | None
    baseline_name: str = "–"
    baseline: float | None = None
    ratio: float | None = None
    spread: tuple[float, float] | None = None
    cpu_ms: tuple[float | None, float] | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.goal.met(self.ratio if self.ratio is not None else self.kluis)


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "n/a"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cells(row: Row) -> list[str]:
    ratio = "–" if row.ratio is None else f"{row.ratio:.2f}"
    if row.spread is not None and row.ratio is not None:
        ratio += f" ({row.spread[0]:.2f}–{row.spread[1]:.2f})"
    cpu = "–"
    if row.cpu_ms is not None:
        cpu = f"{_num(row.cpu_ms[0])} / {_num(row.cpu_ms[1])}"
    met = {None: "–", True: "yes", False: "NO"}[row.met]
    baseline = row.baseline_name
    if row.baseline is not None:
        baseline += f": {_num(row.baseline)}"
    measure = row.measure + (f" [{row.note}]" if row.note else "")
    return [
        measure,
        baseline,
        f"{_num(row.kluis)} {row.unit}",
        ratio,
        cpu,
        row.goal.text if row.goal else "–",
        met,
    ]


HEADER = [
    "measure",
    "baseline (same run)",
    "Kluis",
    "ratio (rounds)",
    "CPU ms/req (base / Kluis)",
    "goal",
    "met",
]


def render(rows: list[Row], meta: dict[str, Any]) -> str:
    """The table as Markdown (it reads as plain text too), with the run's facts above it."""
    lines = [
        f"python -m bench{' --quick' if meta.get('quick') else ''}: {meta.get('date', '?')}, "
        f"{meta.get('cores', '?')} cores, load average {meta.get('load_start', '?')} at start, "
        f"{meta.get('load_end', '?')} at end, {meta.get('seconds', 0):.0f} s",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join("---" for _ in HEADER) + " |",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def to_json(rows: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "rows": [
            {**dataclasses.asdict(row), "met": row.met, "goal": _goal_json(row.goal)}
            for row in rows
        ],
    }


def _goal_json(goal: Goal | None) -> dict[str, Any] | None:
    return None if goal is None else dataclasses.asdict(goal)


def from_json(document: dict[str, Any]) -> tuple[list[Row], dict[str, Any]]:
    rows = []
    for entry in document["rows"]:
        fields = {k: v for k, v in entry.items() if k != "met"}
        goal = fields.pop("goal")
        for name in ("spread", "cpu_ms"):
            if fields.get(name) is not None:
                fields[name] = tuple(fields[name])
        rows.append(Row(**fields, goal=None if goal is None else Goal(**goal)))
    return rows, document["meta"]


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What changed from an earlier run, row by row (matched by measure)."""
    before, old_meta = from_json(old)
    after, new_meta = from_json(new)
    earlier = {row.measure: row for row in before}
    lines = [
        f"change from {old_meta.get('date', '?')} (load {old_meta.get('load_start', '?')}) "
        f"to {new_meta.get('date', '?')} (load {new_meta.get('load_start', '?')})",
        "",
        "| measure | Kluis then → now | ratio then → now | change of the ratio | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in after:
        was = earlier.pop(row.measure, None)
        if was is None:
            lines.append(f"| {row.measure} | new: {_num(row.kluis)} {row.unit} | – | – | – |")
            continue
        ratio = "–"
        change = "–"
        if was.ratio is not None and row.ratio is not None:
            ratio = f"{was.ratio:.2f} → {row.ratio:.2f}"
            if was.ratio:
                change = f"{(row.ratio / was.ratio - 1) * 100:+.0f}%"
        met = {None: "–", True: "yes", False: "NO"}
        lines.append(
            f"| {row.measure} | {_num(was.kluis)} → {_num(row.kluis)} {row.unit} | {ratio} | "
            f"{change} | {met[was.met]} → {met[row.met]} |"
        )
    lines += [f"| {measure} | gone | – | – | – |" for measure in earlier]
    return "\n".join(lines)
