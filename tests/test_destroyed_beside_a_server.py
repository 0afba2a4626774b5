"""A key destroyed by another process while a running server holds it opened for a link.

``kluis serve`` keeps an item key it opened for a link, with the cipher
states, while the link lives (vault/share/opened.py): at every use only the
facts version (one number in the database) and, on the local keyring, one
``stat`` of the keyring file say whether anything changed. ``kluis retention
run`` is another process; when it destroys what a live link names, the next
fetch of that very link must not give the bytes any more, whatever the
server kept. Both key stores: the local keyring (the server keeps the key)
and SoftHSM2 (it keeps none, and unwraps at every answer).

* A child's term ends (its placement got an end date, the term and the grace
  passed: ``--now``): the run destroys the child key, marks the items and, a
  month on, the shred epoch the key was moved into. The same link, fetched
  before from the same server, answers 410 ``destroyed``.
* A run killed after it destroyed the shred epoch's master key and before
  it marked any row (the state is made here by destroying only the master
  key, from the test's own process): no fact changed, the policy still says
  yes, and only the key store can tell. The link answers 410 ``destroyed``;
  the next run completes the destruction.

How these were seen to fail (by hand, in a copy of the tree, not
committed): with the facts cache answering its kept facts whatever the
version (``FactsCache.get`` not comparing the number), the first test gets
404 ``not_found`` on both key stores instead of 410 (the stale facts pass
the policy and name a blob the run has deleted); with ``OpenedKeys.open`` not
asking ``master_usable`` for a kept entry, the second gets 200 and the bytes
on the local keyring. The first does not rest on ``master_usable`` (it
stays green without it): the run changes facts, the fresh facts mark the
item destroyed, and the policy refuses before any key is looked at.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from tests.helpers.keystores import KeyStore
from tests.helpers.organisation import document, organisation
from tests.helpers.processes import Client, Server, initialised, kluis, kluis_env
from vault.config import RetentionSettings
from vault.retention.schedule import add_months

pytestmark = [pytest.mark.sqlite, pytest.mark.localdisk, pytest.mark.slow]

GRACE = timedelta(days=RetentionSettings().grace_days)
TERM_MONTHS = RetentionSettings().observation_months


def stamp(day: date) -> str:
    return datetime.combine(day, time(3), UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Scene:
    env: dict[str, str]
    server: Server
    admin: Client
    guardian: Client
    doomed: str
    #: A link to the doomed child's observation, and its bytes.
    link: str
    sent: bytes
    #: A link to another child's observation (it must go on giving its bytes).
    other: str
    other_sent: bytes
    #: The day the doomed child's observations are due (term and grace passed).
    due: date


@pytest.fixture
async def scene(tmp_path: Path, key_store: KeyStore) -> AsyncIterator[Scene]:
    """A running server holding the doomed child's item key opened for a live
    link: fetched after the child's placement ended (the key moved into a
    shred epoch), while the guardian still sees the records (the window)."""
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"), **key_store.env)
    async with initialised(env, tmp_path / "server.log") as (server, admin):
        staff, guardian, children = await organisation(admin)
        doomed, spared = children[0], children[1]
        links, sent = [], []
        for child in (doomed, spared):
            data = document(child)
            status, body = await staff.upload(child, {"kind": "observation"}, data, "o.pdf")
            assert status == 201, body
            made = await guardian.ok("POST", f"/v1/items/{body['id']}/links", {"ttl_seconds": 3600})
            links.append(made["url"])
            sent.append(data)
        ended = datetime.now(UTC).date() - timedelta(days=1)
        await admin.ok(
            "PUT",
            f"/v1/children/{doomed}/placement",
            {"start_date": "2024-01-01", "end_date": ended.isoformat()},
        )
        for _ in range(2):  # the second answer comes from what the server kept
            assert await guardian.fetch(links[0]) == (200, sent[0])
        yield Scene(
            env,
            server,
            admin,
            guardian,
            doomed,
            links[0],
            sent[0],
            links[1],
            sent[1],
            add_months(ended, TERM_MONTHS) + GRACE,
        )


def refusal(answer: tuple[int, bytes]) -> tuple[int, str | None]:
    status, body = answer
    try:
        return status, json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return status, None  # the bytes themselves, or something else that is no refusal


async def retention_run(env: dict[str, str], day: date) -> str:
    """``kluis retention run --now day`` in a process of its own: what it printed."""
    status, out, err = await kluis(env, "retention", "run", "--now", stamp(day))
    assert status == 0, out + err
    return out


async def settled(scene: Scene) -> None:
    """The other child's link still works, nothing failed, the audit chain holds."""
    assert await scene.guardian.fetch(scene.other) == (200, scene.other_sent)
    await scene.server.stop()
    assert scene.server.server_errors() == []
    status, out, err = await kluis(scene.env, "audit", "verify")
    assert status == 0, out + err


async def test_a_run_in_another_process_ends_a_link_the_server_holds_opened(
    scene: Scene,
) -> None:
    report = await retention_run(scene.env, scene.due)
    assert "records destroyed, observation: 1\n" in report, report
    assert refusal(await scene.guardian.fetch(scene.link)) == (410, "destroyed")

    # A month on, the shred epoch the child key was moved into goes too.
    report = await retention_run(scene.env, add_months(scene.due, 1))
    assert "epochs destroyed: shred-" in report, report
    assert refusal(await scene.guardian.fetch(scene.link)) == (410, "destroyed")
    await settled(scene)


async def test_a_master_key_gone_before_the_rows_ends_a_link_the_server_holds_opened(
    scene: Scene, key_store: KeyStore
) -> None:
    # The epoch the child's observation key moved into (the month it is due);
    # its profile key went into a later one, and stays.
    shred = f"shred-{scene.due:%Y-%m}"
    async with key_store.opened() as provider:
        live = {k.name for k in await provider.list_keys() if not k.destroyed}
        assert shred in live, live
        assert await provider.destroy_key(shred, datetime.now(UTC))
    assert refusal(await scene.guardian.fetch(scene.link)) == (410, "destroyed")

    # The next run finishes what the killed one began.
    report = await retention_run(scene.env, add_months(scene.due, 1))
    assert "records destroyed, observation: 1\n" in report, report
    assert refusal(await scene.guardian.fetch(scene.link)) == (410, "destroyed")
    await settled(scene)
