"""A moment or a date in a request that the vault cannot work with (before
1900 or after 2999, as 0001-01-01T00:00:00+01:00 is before year 1 in UTC)
is refused 400 ``invalid_input`` by one check every model shares, with a
message saying what to send; no call answers 500 for it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.helpers.api import Api
from tests.helpers.cli import clean_env, run
from tests.helpers.world import world

EDGES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z",
]


def refused(status: int, body: object, field: str) -> None:
    assert status == 400, body
    assert isinstance(body, dict)
    assert body["error"]["code"] == "invalid_input"
    message = body["error"]["message"]
    assert field in message, message
    assert "1900" in message, message
    assert "2999" in message, message


@pytest.mark.parametrize("moment", EDGES)
async def test_a_listing_before_an_unworkable_moment_is_refused(api: Api, moment: str) -> None:
    w = await world(api)
    query = urlencode({"before": moment})
    status, body = await api.call("GET", f"/v1/children/{w.child}/items?{query}", w.parent)
    refused(status, body, "before")


@pytest.mark.parametrize("moment", EDGES)
async def test_a_retention_run_at_an_unworkable_moment_is_refused(api: Api, moment: str) -> None:
    w = await world(api)
    for dry_run in (True, False):
        body = {"now": moment, "dry_run": dry_run}
        status, answer = await api.call("POST", "/v1/retention/run", w.officer, body)
        refused(status, answer, "now")


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        ("0001-01-01T00:00:00+01:00", "0001-06-01T00:00:00Z", "since"),
        ("2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "until"),
        ("9999-06-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "since"),
    ],
)
async def test_the_breach_question_over_unworkable_moments_is_refused(
    api: Api, since: str, until: str, field: str
) -> None:
    w = await world(api)
    query = urlencode({"person": w.parent_id, "since": since, "until": until})
    status, body = await api.call("GET", f"/v1/audit/touched?{query}", w.officer)
    refused(status, body, field)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2025-01-01", "9999-12-31", "end_date"),
        ("0001-01-01", None, "start_date"),
    ],
)
async def test_a_placement_with_an_unworkable_date_is_refused(
    api: Api, start: str, end: str | None, field: str
) -> None:
    w = await world(api)
    path = f"/v1/children/{w.child}/placement"
    body = {"start_date": start, "end_date": end}
    status, answer = await api.call("PUT", path, api.admin, body)
    refused(status, answer, field)
    # The placement is as it was, and a workable far end still works.
    status, answer = await api.call(
        "PUT", path, api.admin, {"start_date": "2025-01-01", "end_date": "2999-12-31"}
    )
    assert status == 200, answer


@pytest.mark.parametrize(
    "args",
    [
        ["retention", "run", "--dry-run", "--now", "0001-01-01T00:00:00+01:00"],
        ["retention", "run", "--dry-run", "--now", "9999-12-31T23:59:59Z"],
        [
            "audit",
            "touched",
            "--person",
            "p",
            "--since",
            "0001-01-01T00:00:00+01:00",
            "--until",
            "2026-01-01T00:00:00Z",
        ],
        [
            "audit",
            "touched",
            "--person",
            "p",
            "--since",
            "2026-01-01T00:00:00Z",
            "--until",
            "9999-12-31T23:59:59-01:00",
        ],
    ],
)
def test_the_command_line_refuses_an_unworkable_moment(tmp_path: Path, args: list[str]) -> None:
    """Refused by the argument parser (exit 2, before the vault is opened)."""
    done = run(clean_env(KLUIS_DATA_DIR=str(tmp_path / "none")), *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "1900" in done.stderr, done.stderr
    assert "2999" in done.stderr, done.stderr
