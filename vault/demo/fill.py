"""Putting the sample organisation into an empty vault (``kluis demo``).

Every step goes in through the code the API runs for the same call, in the
same order, and nothing else writes a row:

* each request body is read by the API's own reader
  (:func:`vault.api.body.decode`: the text gate, the model, the free-text
  pass and its BSN scan), so what the API would refuse is refused here;
* the directory (:mod:`vault.directory`: people sealed, children's profiles
  under their own keys), the consent ledger, the retention schedule and the
  contract-end mail to the guardians, as the directory and consent calls do;
* uploads and diary entries through :mod:`vault.items.ingest`: sniffed,
  size-capped, stripped of metadata, encrypted, stored, their ``item.store``
  event committed with their rows, a video's posters queued as jobs;
* what a person does (a parent's consent, a staff member's upload) is first
  asked of :func:`vault.policy.decide` for that person, and each step is put
  on the audit record under the API's action name, attributed to that
  person with the agent ``kluis demo`` (the directory's steps to the
  operator, as every command's);
* passwords are checked by the sign-in rules
  (:func:`~vault.accounts.passwords.check_new_password`), hashed with
  Argon2id and stored in the sign-in accounts (:mod:`vault.accounts.store`),
  as accepting an invitation does, without sending one.

Choice: in-process on :func:`vault.wiring.open_vault`, like every other
command, not through a running server's HTTP API: it needs no server and no
admin token (``kluis init`` prints that once, for the operator), and it can
hold the installation lock, so that the check "this vault holds nothing
yet" and the filling are one step that no other ``kluis demo`` or
``kluis init`` interleaves with.

The steps: :mod:`.organisation` (the directory, passwords, consents),
:mod:`.records` (the files, diary entries and the contract that ended),
each through :class:`~vault.demo.acting.Acting`.

May touch: the directory, consents, items and their blobs, the sign-in
accounts, the outbox (the contract-end mail), the audit log.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.db import locks
from vault.db.schema import care_groups, children, installation, items, locations, people
from vault.demo.acting import Acting
from vault.demo.organisation import Account, organisation
from vault.demo.records import draw, end_contracts, records
from vault.errors import Conflict
from vault.installation import LOCK_WAIT_SECONDS
from vault.media.images import configure_vips
from vault.wiring import Vault


class NotEmpty(Conflict):
    default_message = (
        "This vault already holds records; 'kluis demo' fills only an empty vault, right "
        "after 'kluis init' (in a new data directory). Nothing was written."
    )


@dataclasses.dataclass(frozen=True)
class Filled:
    accounts: list[Account]
    app_url: str
    #: Records added, by kind.
    added: dict[str, int]
    #: Why there is no video, if there is none.
    no_video: str | None = None


async def holdings(conn: AsyncConnection) -> dict[str, int]:
    """What the vault holds beyond what ``kluis init`` made (its admin)."""
    admin = await conn.scalar(
        select(installation.c.value).where(installation.c.key == "admin_person_id")
    )
    counts = {
        "people besides the admin": await conn.scalar(
            select(func.count()).select_from(people).where(people.c.id != (admin or ""))
        ),
        "locations": await conn.scalar(select(func.count()).select_from(locations)),
        "groups": await conn.scalar(select(func.count()).select_from(care_groups)),
        "children": await conn.scalar(select(func.count()).select_from(children)),
        "records": await conn.scalar(select(func.count()).select_from(items)),
    }
    return {what: int(n or 0) for what, n in counts.items() if n}


async def fill(vault: Vault, say: Callable[[str], None] = lambda _: None) -> Filled:
    """Fill the empty ``vault`` with the sample; :class:`NotEmpty` (nothing
    written) if it holds anything already. ``say`` hears progress."""
    async with locks.held(
        vault.engine,
        "init",
        wait=LOCK_WAIT_SECONDS,
        busy="Another 'kluis init' or 'kluis demo' has been running for minutes; check it.",
    ):
        async with vault.engine.connect() as conn:
            found = await holdings(conn)
        if found:
            held = ", ".join(f"{what}: {n}" for what, n in found.items())
            raise NotEmpty(
                f"This vault already holds records ({held}); 'kluis demo' fills only an "
                "empty vault, right after 'kluis init' (in a new data directory). Nothing "
                "was written."
            )
        # Uploads are read under the same libvips lock-down as the service's.
        configure_vips()
        run = Acting(vault)
        try:
            # The files are drawn meanwhile, off the event loop.
            drawing = asyncio.create_task(asyncio.to_thread(draw, run.today))
            try:
                run.as_operator()
                await run.record("demo.fill")
                accounts = await organisation(run)
                say("directory, passwords and consents in place; adding the records")
                media = await drawing
            finally:
                drawing.cancel()
            added = await records(run, media)
            await end_contracts(run)
        finally:
            run.close()
    return Filled(accounts, run.app_url, added, media.no_video)
