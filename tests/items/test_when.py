"""When a file was taken (vault/items/when.py): every ``taken_at`` as UTC
with ``Z``, a zone-less time read in the camera zone (the daylight-saving
gap and fold decided one way), and the organisation's day of a moment."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from vault.items.when import local_day, local_time, normal_taken_at

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20T14:03:00Z", "2026-11-20T14:03:00Z"),
        ("2026-11-20T14:03:00+00:00", "2026-11-20T14:03:00Z"),
        ("2026-11-20T15:03:00+01:00", "2026-11-20T14:03:00Z"),
        ("2026-05-01T10:15:30-05:00", "2026-05-01T15:15:30Z"),
        ("2026-11-20T14:03:00.987654Z", "2026-11-20T14:03:00Z"),  # seconds, as EXIF's
        ("2026-11-20 14:03:00Z", "2026-11-20T14:03:00Z"),
        # Zone-less: the camera zone's wall clock, winter (+01:00) and summer (+02:00).
        ("2026-11-20T14:03:00", "2026-11-20T13:03:00Z"),
        ("2026-07-01T14:03:00", "2026-07-01T12:03:00Z"),
        # The spring-forward gap (02:00 became 03:00 on 29 March 2026): the offset before it.
        ("2026-03-29T02:30:00", "2026-03-29T01:30:00Z"),
        # The autumn fold (03:00 became 02:00 on 25 October 2026): the first 02:30 (+02:00).
        ("2026-10-25T02:30:00", "2026-10-25T00:30:00Z"),
        ("2026-10-25T01:59:59", "2026-10-24T23:59:59Z"),
        ("2026-10-25T03:00:00", "2026-10-25T02:00:00Z"),
        # A day alone stays a day: no time to move to UTC.
        ("2026-11-20", "2026-11-20"),
    ],
)
def test_every_taken_at_becomes_utc(value: str, expected: str) -> None:
    assert normal_taken_at(value, AMSTERDAM) == expected


def test_normalising_twice_changes_nothing() -> None:
    once = normal_taken_at("2026-10-25T02:30:00", AMSTERDAM)
    assert normal_taken_at(once, AMSTERDAM) == once
    assert normal_taken_at(once, ZoneInfo("Asia/Tokyo")) == once  # a Z is not reread


def test_the_zone_decides_a_zoneless_time() -> None:
    assert normal_taken_at("2026-11-20T14:03:00", ZoneInfo("UTC")) == "2026-11-20T14:03:00Z"
    assert normal_taken_at("2026-11-20T14:03:00", ZoneInfo("Asia/Tokyo")) == "2026-11-20T05:03:00Z"


@pytest.mark.parametrize(
    "value",
    [
        "gisteren",
        "2026-13-01T10:00:00",
        "2026-11-20T25:00:00",
        "",
        # Moments UTC (or Amsterdam) cannot write: before year 1, after 9999.
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:10:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_what_is_no_time_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"."):  # datetime's own message
        normal_taken_at(value, AMSTERDAM)
    if value != "0001-01-01T00:10:00":  # (a zone-less time's day needs no UTC)
        with pytest.raises(ValueError, match=r"."):
            local_day(value, AMSTERDAM)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20T22:30:00Z", date(2026, 11, 20)),  # 23:30 in Amsterdam
        ("2026-11-20T23:30:00Z", date(2026, 11, 21)),  # 00:30 the next day
        ("2026-07-01T21:59:59Z", date(2026, 7, 1)),
        ("2026-07-01T22:00:00Z", date(2026, 7, 2)),  # midnight in summer time
        ("2026-11-21T00:30:00+01:00", date(2026, 11, 21)),
        ("2026-11-20T23:30:00", date(2026, 11, 20)),  # zone-less: already the wall clock
        ("2026-11-20", date(2026, 11, 20)),
        (datetime(2026, 11, 20, 23, 30, tzinfo=UTC), date(2026, 11, 21)),
    ],
)
def test_the_local_day(value: str | datetime, expected: date) -> None:
    assert local_day(value, AMSTERDAM) == expected


@pytest.mark.parametrize(
    "value",
    [
        # UTC can write these, Amsterdam's clocks cannot (10000-01-01 00:59:59 there).
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:00:00Z",
        "9999-12-31T23:30:00+00:00",
    ],
)
def test_a_moment_the_local_clock_cannot_write_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="local"):
        normal_taken_at(value, AMSTERDAM)


def test_the_last_moments_amsterdam_can_write_are_kept() -> None:
    assert normal_taken_at("9999-12-31T22:59:59Z", AMSTERDAM) == "9999-12-31T22:59:59Z"
    assert normal_taken_at("0001-01-01T00:00:00Z", AMSTERDAM) == "0001-01-01T00:00:00Z"


def test_a_stored_moment_beyond_the_local_clock_has_no_local_time() -> None:
    # A value an older version stored: a ValueError the export can fall back on, no OverflowError.
    with pytest.raises(ValueError, match="local"):
        local_time(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), AMSTERDAM)
    with pytest.raises(ValueError, match="local"):
        local_day("9999-12-31T23:59:59Z", AMSTERDAM)
