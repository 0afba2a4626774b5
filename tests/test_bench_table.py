"""The benchmark table's shape (bench/table.py): what `python -m bench` prints,
writes as JSON and compares. No server, no timing: the figures are made up."""

from __future__ import annotations

import json

from bench.table import Goal, Row, compare, from_json, render, to_json

META = {
    "date": "2026-12-02 03:00 UTC",
    "quick": True,
    "cores": 2,
    "load_start": "3.10 2.00 1.50",
    "load_end": "4.20 3.00 2.00",
    "seconds": 75.0,
}


def rows(cpu_ratio: float = 2.0, retention_s: float = 90.0) -> list[Row]:
    return [
        Row(
            measure="thumbnail link answer, server CPU per request",
            unit="ms",
            baseline_name="plain FileResponse",
            baseline=0.5,
            kluis=0.5 * cpu_ratio,
            ratio=cpu_ratio,
            spread=(cpu_ratio - 0.25, cpu_ratio + 0.25),
            cpu_ms=(0.5, 0.5 * cpu_ratio),
            goal=Goal("<=", 1.5, "<= 1.5x"),
            note="wrk 8 connections",
        ),
        Row(
            measure="retention run destroying 10,000 children × 50 items, wall time",
            unit="s",
            kluis=retention_s,
            goal=Goal("<", 60, "< 60 s"),
        ),
        Row(measure="first byte at the end of a video", unit="ms", kluis=2.5, goal=None),
    ]


def test_the_table_has_every_column_and_says_whether_each_goal_is_met() -> None:
    text = render(rows(), META)
    lines = text.splitlines()
    assert "2026-12-02 03:00 UTC" in lines[0]
    assert "2 cores" in lines[0]
    assert "3.10 2.00 1.50 at start" in lines[0]
    assert "4.20 3.00 2.00 at end" in lines[0]
    assert lines[2].split(" | ")[0] == "| measure"
    assert "goal" in lines[2]
    assert "met" in lines[2]
    assert "CPU ms/req" in lines[2]
    cpu_row, retention_row, plain_row = lines[4:7]
    assert "| 2.00 (1.75–2.25) |" in cpu_row
    assert "| 0.50 / 1.00 |" in cpu_row
    assert cpu_row.endswith("| <= 1.5x | NO |")
    assert "[wrk 8 connections]" in cpu_row
    # Without a baseline the goal is on the figure itself: 90 s is not under 60 s.
    assert retention_row.endswith("| < 60 s | NO |")
    assert plain_row.endswith("| – | – |")
    assert render(rows(cpu_ratio=1.2, retention_s=40), META).splitlines()[4].endswith("| yes |")


def test_the_json_reads_back_as_the_same_rows() -> None:
    document = json.loads(json.dumps(to_json(rows(), META)))
    assert document["meta"] == META
    assert [entry["met"] for entry in document["rows"]] == [False, False, None]
    back, meta = from_json(document)
    assert back == rows()
    assert meta == META


def test_compare_shows_the_change_of_each_ratio_and_of_met() -> None:
    old = to_json(rows(cpu_ratio=2.0), META)
    newer = [
        *rows(cpu_ratio=1.0, retention_s=45)[:2],
        Row(measure="a new measure", unit="/s", kluis=10, goal=None),
    ]
    text = compare(old, to_json(newer, {**META, "date": "2026-12-03 03:00 UTC"}))
    assert "from 2026-12-02 03:00 UTC" in text
    assert "to 2026-12-03 03:00 UTC" in text
    by_measure = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()}
    cpu = by_measure["thumbnail link answer, server CPU per request"]
    assert "2.00 → 1.00" in cpu
    assert "-50%" in cpu
    assert "NO → yes" in cpu
    retention = by_measure["retention run destroying 10,000 children × 50 items, wall time"]
    assert "90.0 → 45.0 s" in retention
    assert "NO → yes" in retention
    assert "new: 10.0 /s" in by_measure["a new measure"]
    assert "gone" in by_measure["first byte at the end of a video"]
