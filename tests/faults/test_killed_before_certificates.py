"""A run killed between destroying child keys and certifying them.

A real ``kluis keys rotate`` or ``kluis retention run`` is stopped by SIGKILL
(tests/helpers/killpoint.py) at the moment a power loss would hurt most: a
doomed child's observation key has just been destroyed, nothing after that
has run. The same command is run again, and the privacy officer's listing
(``kluis retention certificates``, the rows ``GET /v1/children/{id}/
certificates`` reads) must then hold exactly one certificate for that key:
never none (the key destroyed with no proof of it, for good), never two.
On the local disk with SQLite and on MinIO with PostgreSQL.

* ``rotate``: killed once ``destroy_epoch_keys`` has destroyed the shred
  epoch's child keys (its master key went just before). Before the fix the
  rows were committed there and the certificates written in a transaction
  of their own after: the next run saw no child key in the epoch and
  certified nothing.
* ``rotate``, killed once the shred epoch's master key is destroyed, before
  its rows: the next run finishes them, certifies them once, and says so
  plainly (not "epochs destroyed: none" beside "child keys destroyed with
  them: 1").
* ``retention``: killed once the term's end destroyed the child key (inside
  the batch's transaction, before it commits); then the epoch the key
  was in goes a month on, without a second certificate.
* ``retention``, a forgotten person (a term after nothing links them):
  killed once their own key is destroyed. Its certificate is there at once,
  dated the moment of the run that destroyed the key, and a later run
  neither adds one nor dates it anew.

How these were seen to fail, at 269974f (before the fix), on both
deployments: the first test found no certificate at all after the second
run (``[]``); the second printed ``epochs destroyed: none`` beside ``child
keys destroyed with them: 1``. The third passed there too: a retention
batch already certified in the transaction that destroys its keys.

The fourth failed at f545c3e (before session 13's fix), on both
deployments: right after the kill the person had no certificate (``[]``);
the key was destroyed in a transaction of its own and certified in another
after it, which the kill never reached. (The run after wrote one, dated its
own moment, a day late.)
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from tests.helpers.killpoint import killed_at
from tests.helpers.organisation import document, organisation
from tests.helpers.processes import initialised, kluis
from vault.config import RetentionSettings
from vault.directory.sealing import PERSON
from vault.retention.schedule import add_months

pytestmark = pytest.mark.slow

GRACE = timedelta(days=RetentionSettings().grace_days)
TERM_MONTHS = RetentionSettings().observation_months
PERSON_TERM = timedelta(days=RetentionSettings().person_term_days)
KILLED = -9


def stamp(day: date) -> str:
    return datetime.combine(day, time(3), UTC).isoformat().replace("+00:00", "Z")


def month_after(day: date) -> date:
    return add_months(day.replace(day=1), 1)


async def doomed_child(env: dict[str, str], tmp_path: Path) -> tuple[str, date]:
    """A child with one observation whose placement ended yesterday (its
    observation key moved into the shred epoch of the month it is due): the
    child's id and the day it is due."""
    async with initialised(env, tmp_path / "server.log") as (server, admin):
        staff, _, children = await organisation(admin)
        doomed = children[0]
        data = document(doomed)
        status, body = await staff.upload(doomed, {"kind": "observation"}, data, "o.pdf")
        assert status == 201, body
        ended = datetime.now(UTC).date() - timedelta(days=1)
        await admin.ok(
            "PUT",
            f"/v1/children/{doomed}/placement",
            {"start_date": "2024-01-01", "end_date": ended.isoformat()},
        )
    assert server.server_errors() == []
    return doomed, add_months(ended, TERM_MONTHS) + GRACE


async def observation_certificates(env: dict[str, str], child: str) -> list[dict[str, object]]:
    status, out, err = await kluis(env, "retention", "certificates", child)
    assert status == 0, out + err
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [c for c in found if c["category"] == "observation"]


async def audit_verifies(env: dict[str, str]) -> None:
    status, out, err = await kluis(env, "audit", "verify")
    assert status == 0, out + err


async def rotate_again_after_a_kill(
    env: dict[str, str], tmp_path: Path, spec: str
) -> tuple[str, str, tuple[str, ...], str]:
    """A doomed child, a ``kluis keys rotate`` past its shred epoch killed
    where ``spec`` first returns something, then the same rotate again: the
    child, the epoch, the rotate's arguments and the second run's output."""
    child, due = await doomed_child(env, tmp_path)
    rotate = ("keys", "rotate", "--now", stamp(month_after(due)))
    status, out, err = await killed_at(env, spec, *rotate)
    assert status == KILLED, out + err
    status, out, err = await kluis(env, *rotate)
    assert status == 0, out + err
    return child, f"shred-{due:%Y-%m}", rotate, out


async def test_rotate_killed_after_destroying_an_epochs_child_keys_certifies_them_next_time(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    child, shred, rotate, _ = await rotate_again_after_a_kill(
        deployment, tmp_path, "vault.keys.service:KeyService.destroy_epoch_keys"
    )
    certificates = await observation_certificates(deployment, child)
    assert [(c["items"], c["epochs"], c["cause"]) for c in certificates] == [
        (1, [shred], "epoch")
    ], certificates
    # Again: nothing more to destroy, nothing certified twice.
    status, out, err = await kluis(deployment, *rotate)
    assert status == 0, out + err
    assert len(await observation_certificates(deployment, child)) == 1
    await audit_verifies(deployment)


async def test_rotate_killed_after_the_master_key_finishes_its_child_keys_and_says_so(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    child, shred, rotate, out = await rotate_again_after_a_kill(
        deployment, tmp_path, "vault.keys.local:LocalKeyring.destroy_key"
    )
    assert "epochs destroyed: none\n" in out, out
    assert "child keys destroyed with them: 0\n" in out, out
    assert (
        "child keys of epochs destroyed earlier, destroyed now "
        f"(a run had stopped before them): 1 ({shred})\n"
    ) in out, out
    certificates = await observation_certificates(deployment, child)
    assert [(c["items"], c["epochs"]) for c in certificates] == [(1, [shred])], certificates
    status, out, err = await kluis(deployment, *rotate)
    assert status == 0, out + err
    assert "destroyed earlier" not in out, out
    assert len(await observation_certificates(deployment, child)) == 1
    await audit_verifies(deployment)


async def test_retention_killed_after_destroying_a_childs_key_certifies_it_once(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    child, due = await doomed_child(deployment, tmp_path)
    run = ("retention", "run", "--now", stamp(due))
    status, out, err = await killed_at(deployment, "vault.keys.service:KeyService.destroy_in", *run)
    assert status == KILLED, out + err

    status, out, err = await kluis(deployment, *run)
    assert status == 0, out + err
    assert "records destroyed, observation: 1\n" in out, out
    certificates = await observation_certificates(deployment, child)
    assert [(c["items"], c["cause"]) for c in certificates] == [(1, "retention")], certificates
    # A month on the shred epoch the key was in goes, and certifies nothing again.
    later = ("retention", "run", "--now", stamp(month_after(due)))
    status, out, err = await kluis(deployment, *later)
    assert status == 0, out + err
    assert f"epochs destroyed: shred-{due:%Y-%m}" in out, out
    assert len(await observation_certificates(deployment, child)) == 1
    await audit_verifies(deployment)


async def unlinked_staff(env: dict[str, str], tmp_path: Path) -> str:
    """A staff member taken off their only group today: unlinked, so
    forgotten a term on. Their id."""
    async with initialised(env, tmp_path / "server.log") as (server, admin):
        location = (await admin.ok("POST", "/v1/locations", {"name": "De Boomhut"}))["id"]
        group = (
            await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "Rupsjes"})
        )["id"]
        made = await admin.ok(
            "POST",
            "/v1/people",
            {"name": "Femke Vertrekker", "email": "femke@example.org", "role": "staff"},
        )
        await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": made["id"]})
        await admin.ok("DELETE", f"/v1/groups/{group}/staff/{made['id']}")
    assert server.server_errors() == []
    return str(made["id"])


async def person_certificates(env: dict[str, str], person: str) -> list[dict[str, object]]:
    status, out, err = await kluis(env, "retention", "certificates", person)
    assert status == 0, out + err
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [c for c in found if c["category"] == PERSON]


async def test_retention_killed_after_destroying_a_forgotten_persons_key_has_certified_it(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    leaver = await unlinked_staff(deployment, tmp_path)
    due = datetime.now(UTC).replace(microsecond=0) + PERSON_TERM + timedelta(days=1)
    run = ("retention", "run", "--now", due.isoformat().replace("+00:00", "Z"))
    status, out, err = await killed_at(
        deployment, "vault.keys.service:KeyService.destroy_child_key", *run
    )
    assert status == KILLED, out + err

    # Killed the moment the key was gone: the proof of it is there already,
    # dated when the run that destroyed it ran.
    certificates = await person_certificates(deployment, leaver)
    assert [(c["items"], c["cause"]) for c in certificates] == [(0, "person_term")], certificates
    (certificate,) = certificates
    assert datetime.fromisoformat(str(certificate["destroyed_at"])) == due, certificate

    # A day on, the next run finds nothing to do: no second certificate, none dated anew.
    later = (
        "retention",
        "run",
        "--now",
        (due + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
    )
    status, out, err = await kluis(deployment, *later)
    assert status == 0, out + err
    assert await person_certificates(deployment, leaver) == [certificate]
    await audit_verifies(deployment)
