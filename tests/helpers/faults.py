"""What every fault test checks afterwards, and how many times it tries.

The fault suite (tests/faults/) runs each kind of fault a bounded number of
times in the ordinary suite and many times with ``--faults-long`` (or
``KLUIS_FAULTS_LONG=1``), by hand; ``--faults-rounds N`` (or
``KLUIS_FAULTS_ROUNDS=N``) asks for exactly N iterations of every kind instead
(``KLUIS_FAULTS_ROUNDS=100``: the sweep after 100 crashes). Whatever the
fault, afterwards:

* every acknowledged record reads back with the bytes that were sent (or,
  where the test destroyed it on purpose, answers 410 ``destroyed``);
* nothing half-visible: a child's item listing holds the records that were
  acknowledged (and not destroyed), and besides them only uploads that got no
  answer (the server was killed after the commit), each whole;
* after a sweep with no grace, the store holds exactly the blobs of live
  items: no orphan, nothing missing;
* ``kluis audit verify`` passes;
* no 500 in the server's log that a fault did not cause.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import select

from tests.helpers.processes import Client, kluis
from vault.config import load_settings
from vault.db.schema import item_blobs, items
from vault.storage.base import BlobNotFound, blob_key_created
from vault.wiring import open_vault


def rounds(config: pytest.Config, short: int, long: int) -> int:
    """How many iterations of one fault kind this run makes: the number asked
    for by hand, else ``long`` with ``--faults-long``, else ``short``."""
    asked = config.getoption("--faults-rounds") or os.environ.get("KLUIS_FAULTS_ROUNDS")
    if asked:
        try:
            number = int(asked)
        except ValueError:
            number = 0
        if number < 1:
            raise pytest.UsageError(
                "--faults-rounds / KLUIS_FAULTS_ROUNDS must be a whole number above 0, "
                f"not {asked!r}"
            )
        return number
    wanted = config.getoption("--faults-long") or os.environ.get("KLUIS_FAULTS_LONG") == "1"
    return long if wanted else short


@dataclasses.dataclass
class Ledger:
    """The records a fault test was answered 201 for: id -> (child, bytes);
    bytes None for a photo (cleaned on the way in: any whole JPEG)."""

    records: dict[str, tuple[str, bytes | None]] = dataclasses.field(default_factory=dict)
    #: Children whose records the test meant to be destroyed.
    doomed: set[str] = dataclasses.field(default_factory=set)
    #: Uploads that got no answer (the server was killed): each may have been
    #: committed just before, so it may be listed, whole, or not at all.
    unanswered: list[tuple[str, bytes | None]] = dataclasses.field(default_factory=list)

    def add(self, item_id: str, child: str, data: bytes | None) -> None:
        self.records[item_id] = (child, data)

    def of(self, child: str) -> Iterator[str]:
        return (i for i, (c, _) in self.records.items() if c == child)


@dataclasses.dataclass
class Violations:
    """What did not hold, one line each (the goal: none)."""

    lines: list[str] = dataclasses.field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.lines.append(what)


async def records_hold(
    staff: Client, guardian: Client, ledger: Ledger, officer: Client | None = None
) -> list[str]:
    """Every acknowledged record whole (or destroyed on purpose: the privacy
    ``officer``, who still reaches an archived child, is answered 410);
    listings exact."""
    out = Violations()
    for item_id, (child, data) in ledger.records.items():
        if child in ledger.doomed:
            assert officer is not None, "the officer asks about destroyed records"
            status, body = await officer.call("GET", f"/v1/items/{item_id}")
            out.check(status == 410, f"{item_id} of a destroyed child: {status} {body}")
            continue
        status, link = await guardian.call("POST", f"/v1/items/{item_id}/links", {})
        if status != 201:
            out.lines.append(f"{item_id}: link answered {status} {link}")
            continue
        got, body = await guardian.fetch(link["url"], staff.base)
        out.check(got == 200 and _same(body, data), f"{item_id}: fetch {got}, {len(body)} bytes")
    for child in {c for c, _ in ledger.records.values()} - ledger.doomed:
        listed, cursor, status = set(), "", 200
        while cursor is not None and status == 200:
            page = f"/v1/children/{child}/items?limit=200" + (
                f"&cursor={quote(cursor)}" if cursor else ""
            )
            status, listing = await staff.call("GET", page)
            if status == 200:
                listed |= {i["id"] for i in listing["items"] if not i.get("destroyed")}
                cursor = listing["next_cursor"]
        if status != 200:
            out.lines.append(f"listing of {child}: {status}")
            continue
        expected = set(ledger.of(child))
        out.check(expected <= listed, f"{child} does not list {expected - listed}")
        maybe = [data for c, data in ledger.unanswered if c == child]
        for extra in listed - expected:
            # Committed, then killed before the answer left: whole, or a fault.
            status, link = await guardian.call("POST", f"/v1/items/{extra}/links", {})
            got, body = (
                await guardian.fetch(link["url"], staff.base) if status == 201 else (status, b"")
            )
            whole = any(_same(body, data) for data in maybe)
            out.check(got == 200 and whole, f"{child} lists {extra}, not sent whole")
    return out.lines


def _same(body: bytes, sent: bytes | None) -> bool:
    if sent is None:  # a photo: a whole JPEG, start to end
        return body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
    return body == sent


@dataclasses.dataclass(frozen=True)
class Census:
    """The store beside the database at one moment."""

    #: Blobs Kluis made that no live item names: key -> bytes.
    orphans: dict[str, int]
    #: Blobs live items name that the store does not hold.
    missing: set[str]
    #: Live items with such a missing blob (listed, but not whole).
    half_visible: set[str]

    @property
    def orphan_bytes(self) -> int:
        return sum(self.orphans.values())


async def census(env: dict[str, str]) -> Census:
    """Orphans and missing blobs of the vault ``env`` names, counted from the
    test's process. Not beside a running server on the local disk: opening
    the store there clears the writes under way."""
    async with open_vault(load_settings(env)) as vault:
        stored = {key async for key in vault.blobs.list() if blob_key_created(key) is not None}
        async with vault.engine.connect() as conn:
            named = (
                await conn.execute(
                    select(item_blobs.c.item_id, item_blobs.c.blob_key)
                    .join(items, items.c.id == item_blobs.c.item_id)
                    .where(items.c.destroyed_at.is_(None))
                )
            ).all()
        live = {key for _, key in named}
        orphans = {}
        for key in stored - live:
            with contextlib.suppress(BlobNotFound):  # gone since the listing
                orphans[key] = await vault.blobs.size(key)
    missing = live - stored
    return Census(orphans, missing, {item for item, key in named if key in missing})


async def sweep_with_no_grace(env: dict[str, str]) -> tuple[int, list[str]]:
    """``kluis storage sweep --grace-minutes 0``: (orphans it removed, failures)."""
    status, out, err = await kluis(env, "storage", "sweep", "--grace-minutes", "0")
    found = re.search(r"^orphans removed: (\d+)$", out, re.MULTILINE)
    if status != 0 or found is None:
        return 0, [f"sweep exited {status}: {(out + err)[-500:]}"]
    return int(found.group(1)), []


async def store_holds_exactly_the_live_blobs(env: dict[str, str]) -> list[str]:
    """After ``kluis storage sweep --grace-minutes 0``: no orphan, nothing missing."""
    _removed, lines = await sweep_with_no_grace(env)
    if lines:
        return lines
    return census_lines(await census(env))


def census_lines(found: Census) -> list[str]:
    """What a census after a sweep with no grace must not show, one line each."""
    lines = [f"orphan after a sweep: {key}" for key in sorted(found.orphans)]
    lines += [f"blob of a live item missing: {key}" for key in sorted(found.missing)]
    return lines


async def audit_verifies(env: dict[str, str]) -> list[str]:
    status, out, err = await kluis(env, "audit", "verify")
    return [] if status == 0 else [f"kluis audit verify exited {status}: {(out + err)[-800:]}"]
