"""Retention in batches (issue 23 item 4): the same destruction as one child at a time.

The same organisation is built in two vaults, one whose run takes one child
per transaction (what the run did before batches) and one that takes every
child in one transaction. Both runs must destroy exactly the same records,
write the same certificates and the same audit events per child and
category, skip what a hold protects (also inside a batch), and leave the
same blobs. A run that dies between a batch's commit and its blob deletes
leaves that batch wholly destroyed and certified and the rest untouched; the
next run finishes, and the sweeper removes the blobs left behind.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.files import PDF, jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.world import World, world
from vault.api.resources import DB, KEYRING, KEYS, SETTINGS, STORE
from vault.db.schema import (
    audit_events,
    child_keys,
    destruction_certificates,
    item_blobs,
    items,
)
from vault.items.sweep import sweep
from vault.retention.job import Retention

KIDS = 6
#: tests/retention/conftest.py's ``vaults``: a fresh vault running ``batch`` children at a time.
Vaults = Callable[[int], Awaitable[Api]]
ENDED = {"start_date": "2024-01-01", "end_date": "2025-01-31"}  # due by 2026-02-07


class Scene:
    """The organisation of a vault, with labels that are the same in every vault."""

    def __init__(self, api: Api, w: World) -> None:
        self.api, self.w = api, w
        self.labels: dict[str, str] = {w.child: "noor", w.other_group_child: "sem"}
        self.kids: list[str] = []

    async def item(self, child: str, label: str, meta: dict[str, Any], data: bytes) -> None:
        status, made = await upload(self.api, self.w.staff, child, meta, data, "f.bin")
        assert status == 201, made
        self.labels[made["id"]] = label


async def build(api: Api) -> Scene:
    """Noor (contract runs) and Sem (no placement) from the world, and six
    children whose placement ended in January 2025, each with two observations
    and a photo; kind1 and kind2 share a group photo (both due), kind3 shares
    one with Noor (who keeps it). kind0's observations are under a hold, all of
    kind4 is, and kind5's processing is restricted (retention still runs)."""
    w = await world(api)
    scene = Scene(api, w)
    await consent(api, w)
    for n in range(KIDS):
        kid = (
            await api.ok(
                "POST",
                "/v1/children",
                {
                    "first_name": f"Kind{n}",
                    "last_name": "Test",
                    "birth_date": "2023-04-02",
                    "group_id": w.group,
                },
            )
        )["id"]
        await api.ok(
            "PUT", f"/v1/children/{kid}/placement", {"start_date": "2024-01-01", "end_date": None}
        )
        await api.ok(
            "POST",
            f"/v1/children/{kid}/guardians",
            {"person_id": w.parent_id, "relation": "contract_parent", "household": "shared"},
        )
        await consent(api, w, child=kid)
        scene.kids.append(kid)
    # kind1 and kind2 are alike: labelled by id order, the order the run takes
    # children in, so "the last of them" names the same child in every vault.
    first, last = sorted(scene.kids[1:3])
    scene.labels.update({scene.kids[0]: "kind0", first: "pair-first", last: "pair-last"})
    scene.labels.update({kid: f"kind{n}" for n, kid in enumerate(scene.kids) if n >= 3})
    for kid in scene.kids:
        name = scene.labels[kid]
        for m in range(2):
            await scene.item(kid, f"{name}-obs{m}", {"kind": "observation"}, PDF)
        await scene.item(kid, f"{name}-photo", {"kind": "photo"}, jpeg_with_secrets())
    await scene.item(
        first, "pair-group", {"kind": "photo", "tagged_children": [last]}, jpeg_with_secrets()
    )
    await scene.item(
        scene.kids[3],
        "kind3-with-noor",
        {"kind": "photo", "tagged_children": [w.child]},
        jpeg_with_secrets(),
    )
    for kid in scene.kids:
        await api.ok("PUT", f"/v1/children/{kid}/placement", ENDED)
    hold = {"category": "observation", "reason": "dispute"}
    await api.ok("POST", f"/v1/children/{scene.kids[0]}/holds", hold, w.officer)
    await api.ok("POST", f"/v1/children/{scene.kids[4]}/holds", {"reason": "dispute"}, w.officer)
    await api.ok(
        "POST", f"/v1/children/{scene.kids[5]}/restriction", {"reason": "bezwaar"}, w.officer
    )
    return scene


async def last_seq(api: Api) -> int:
    async with api.client.app[DB].connect() as conn:
        return int(await conn.scalar(select(func.max(audit_events.c.seq))) or 0)


async def outcome(scene: Scene, since: int) -> dict[str, Any]:
    """What a run left, in labels: destroyed records, certificates, the audit
    events written since ``since`` (ids of keys and runs left out), blobs."""
    label = scene.labels.get
    async with scene.api.client.app[DB].connect() as conn:
        destroyed = (
            await conn.scalars(select(items.c.id).where(items.c.destroyed_at.is_not(None)))
        ).all()
        certificates = (await conn.execute(select(destruction_certificates))).all()
        events = (
            await conn.execute(
                select(audit_events.c.action, audit_events.c.children, audit_events.c.detail)
                .where(audit_events.c.seq > since)
                .order_by(audit_events.c.seq)
            )
        ).all()
        live_blobs = set(
            (
                await conn.scalars(
                    select(item_blobs.c.blob_key)
                    .join(items, items.c.id == item_blobs.c.item_id)
                    .where(items.c.destroyed_at.is_(None))
                )
            ).all()
        )
    stored = {key async for key in scene.api.client.app[STORE].list()}
    assert stored == live_blobs  # every destroyed item's blob gone, every live one there

    def detail(text: str) -> str:
        kept = {k: v for k, v in json.loads(text).items() if k not in ("key", "run_id")}
        return json.dumps(kept, sort_keys=True)

    return {
        "destroyed": sorted(str(label(i)) for i in destroyed),
        "certificates": sorted(
            (
                str(label(c.child_id)),
                c.category,
                c.item_count,
                c.bytes,
                c.epoch,
                c.cause,
                c.destroyed_at,
                c.backups_dark_at,
                c.key_provider,
            )
            for c in certificates
        ),
        "events": sorted(
            (
                e.action,
                tuple(sorted(str(label(c)) for c in json.loads(e.children))),
                detail(e.detail),
            )
            for e in events
        ),
        "blobs": len(stored),
    }


async def run(scene: Scene) -> dict[str, Any]:
    report: dict[str, Any] = await scene.api.ok("POST", "/v1/retention/run", {}, scene.w.officer)
    return {k: v for k, v in report.items() if k != "run_id"}


#: What the run destroys in :func:`build`'s organisation: not kind0's held
#: observations, nothing of kind4 (held), not kind3's photo with Noor (her key
#: lives); kind5's restriction does not stop retention (issue 19 item 5).
DESTROYED = sorted(
    [
        "kind0-photo",
        *(
            f"{who}-{what}"
            for who in ("pair-first", "pair-last", "kind3", "kind5")
            for what in ("obs0", "obs1", "photo")
        ),
        "pair-group",
    ]
)
#: Items per certificate, by (child, category): each child's records of the
#: category, group photos included (whether they went, or stay for Noor).
CERTIFIED = {
    ("kind0", "photo"): 1,
    ("pair-first", "observation"): 2,
    ("pair-first", "photo"): 2,
    ("pair-last", "observation"): 2,
    ("pair-last", "photo"): 2,
    ("kind3", "observation"): 2,
    ("kind3", "photo"): 2,
    ("kind5", "observation"): 2,
    ("kind5", "photo"): 1,
}


def certified(found: dict[str, Any]) -> dict[tuple[str, str], int]:
    counts = [((c[0], c[1]), c[2]) for c in found["certificates"]]
    assert len(counts) == len(dict(counts)), "a key certified twice"
    return dict(counts)


async def test_a_batched_run_destroys_what_one_child_at_a_time_did(vaults: Vaults) -> None:
    one, batched = await build(await vaults(1)), await build(await vaults(200))
    before = [await last_seq(one.api), await last_seq(batched.api)]
    reports = [await run(one), await run(batched)]
    assert reports[0] == reports[1]
    seen = [await outcome(one, before[0]), await outcome(batched, before[1])]
    assert seen[0] == seen[1]

    found = seen[1]
    assert found["destroyed"] == DESTROYED
    assert reports[1]["destroyed"] == {"observation": 8, "photo": 6}
    assert reports[1]["held"] == 1 + 3  # kind0's observation key; kind4's three keys
    assert certified(found) == CERTIFIED
    destroyed_keys = sorted(
        (e[1], json.loads(e[2])["category"]) for e in found["events"] if e[0] == "key.destroy"
    )
    assert destroyed_keys == sorted(((who,), category) for who, category in CERTIFIED)


async def test_a_run_dying_after_a_batch_commits_leaves_whole_children(
    vaults: Vaults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run dies between a batch's commit and its blob deletes (in the
    process: the store's ``delete_many`` raises what nothing catches). That
    batch's children are destroyed and certified, the others untouched and
    still due; the next run finishes them, and the sweeper removes the blobs
    the dead run left (destroyed items' ciphertext: no key opens them)."""
    api = await vaults(2)
    scene = await build(api)
    app = api.client.app

    class Died(BaseException):
        pass

    async def dies(keys: object) -> list[str]:
        raise Died()

    monkeypatch.setattr(app[STORE], "delete_many", dies)
    job = Retention(app[DB], app[STORE], app[KEYS], app[KEYRING], app[SETTINGS])
    with pytest.raises(Died):
        await job.run(api.clock.now)
    monkeypatch.undo()

    async with app[DB].connect() as conn:
        certificates = set(
            (
                await conn.execute(
                    select(destruction_certificates.c.child_id, destruction_certificates.c.category)
                )
            ).all()
        )
        gone_keys = set(
            (
                await conn.execute(
                    select(child_keys.c.child_id, child_keys.c.category).where(
                        child_keys.c.destroyed_at.is_not(None)
                    )
                )
            ).all()
        )
        orphans = await conn.scalar(
            select(func.count())
            .select_from(item_blobs)
            .join(items, items.c.id == item_blobs.c.item_id)
            .where(items.c.destroyed_at.is_not(None))
        )
    # The batches, as the run takes them: children by id, two at a time. The
    # run died at the first batch with anything due.
    label = scene.labels
    due = {kid for kid in scene.kids if label[kid] != "kind4"}
    ordered = sorted([scene.w.child, scene.w.other_group_child, *scene.kids])
    batches = [set(ordered[i : i + 2]) for i in range(0, len(ordered), 2)]
    dying = next(batch & due for batch in batches if batch & due)
    assert gone_keys == certificates  # keys and certificates committed together
    assert {child for child, _ in gone_keys} == dying  # wholly, and nothing beyond
    assert {(label[c], k) for c, k in certificates} == {
        key for key in CERTIFIED if key[0] in {label[c] for c in dying}
    }
    assert orphans  # the blobs the dead run did not delete

    await job.run(api.clock.now)
    found_late = await sweep(
        app[DB], app[STORE], datetime.now(UTC) + timedelta(days=1), timedelta(0)
    )
    assert found_late.removed == orphans
    done = await outcome(scene, 0)
    assert done["destroyed"] == DESTROYED
    assert certified(done) == CERTIFIED
