"""The account lifecycle's last step: a person's own data destroyed, a term
after nothing linked them to a living record (issue 19 item 8).

:func:`forget_people` is one step of every retention run. It first brings
``people.unlinked_at`` up to date for everyone (vault/directory/links.py says
what a link is and which roles are subject), then forgets each person whose
``unlinked_at + retention.person_term_days`` has come and who is still
unlinked:

1. one transaction, guarded by those same conditions (a link added a moment
   ago, or another run, wins): ``forgotten_at`` set; the sealed profile
   (name, e-mail address), its keyed e-mail hash and the sealed block reason
   cleared; the account (password hash, one-time-code secrets) and single
   sign-on bindings deleted; every token and open invitation revoked; a
   ``person.forget`` audit event naming the person's id only;
2. one transaction: the person's own key (category ``person`` in
   ``child_keys``, which sealed that profile) destroyed, so copies of the
   profile in backups go dark as the certificate says
   (vault/retention/certificates.py), and its destruction certificate
   (category ``person``, no records, dated the run's moment, cause
   ``person_term``) written beside it by the run's ``certify``
   (vault/retention/job.py, ``certifier``), read with ``kluis retention
   certificates <person id>``. A run killed anywhere leaves the key live
   (the next run destroys and certifies it) or destroyed and certified.

Every step looks at the state, so a run killed between them is finished by
the next one, and a second run changes nothing. Versions before session 13
wrote the certificate in a transaction after the key's: a key such a run
left destroyed without one gets it from the next run, dated when the key
was destroyed (:func:`_certify_left_over`). The person's audit trail
stays: it names ids, never names. Their row stays too (with its role and
dates), so the ids in the audit log and the records they made still point
at someone, who is now no one in particular.

May touch: ``people``, ``tokens``, ``accounts``, ``oidc_identities``,
``invitations``, the person's key, ``destruction_certificates``, the audit log.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit import event
from vault.db.schema import (
    accounts,
    child_keys,
    destruction_certificates,
    invitations,
    oidc_identities,
    people,
    tokens,
)
from vault.directory.links import SUBJECT_ROLES, linked, note_links
from vault.directory.sealing import PERSON
from vault.keys.service import Certify, KeyService
from vault.retention.certificates import backups_dark_at
from vault.tokens import new_id

#: The cause on a person's certificate (a child's are ``retention``, ``erasure``, ``epoch``).
CAUSE = "person_term"


@dataclasses.dataclass
class Forgotten:
    #: People whose own data was destroyed by this run (or would be, dry).
    people: int = 0
    #: People newly found unlinked, and found linked again.
    unlinked: int = 0
    relinked: int = 0


def _due(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [
        people.c.forgotten_at.is_(None),
        people.c.role.in_(SUBJECT_ROLES),
        people.c.unlinked_at.is_not(None),
        people.c.unlinked_at <= cutoff,
        ~linked(people.c.id),
    ]


async def forget_people(
    engine: AsyncEngine,
    keys: KeyService,
    now: datetime,
    term: timedelta,
    run_id: str,
    *,
    certify: Certify,
    dry_run: bool = False,
    window: timedelta | None = None,
    provider: str | None = None,
) -> Forgotten:
    """Forget the people due at ``now`` (see the module's docstring).

    ``certify`` writes each destroyed key's certificate in the transaction
    that destroys it (the run's :func:`~vault.retention.job.certifier`, cause
    :data:`CAUSE`). ``window`` and ``provider`` (the backup window, the key
    provider's kind) let the certificates of keys older versions left
    uncertified state when backups go dark, as ``certify``'s do.
    """
    done = Forgotten()
    cutoff = now - term
    if dry_run:
        async with engine.connect() as conn:
            due = await conn.scalars(select(people.c.id).where(*_due(cutoff)))
            done.people = len(due.all())
        return done
    async with engine.begin() as conn:
        done.relinked, done.unlinked = await note_links(conn, now)
    async with engine.connect() as conn:
        due_ids = (await conn.scalars(select(people.c.id).where(*_due(cutoff)))).all()
    for person_id in due_ids:
        if await _forget(engine, keys, person_id, now, cutoff, term, run_id):
            done.people += 1
    await _destroy_keys(engine, keys, certify)
    await _certify_left_over(engine, run_id, window, provider)
    return done


async def _forget(
    engine: AsyncEngine,
    keys: KeyService,
    person_id: str,
    now: datetime,
    cutoff: datetime,
    term: timedelta,
    run_id: str,
) -> bool:
    """Step 1 for one person; False if they were linked (or forgotten) meanwhile."""
    async with engine.begin() as conn:
        unlinked_at = await conn.scalar(
            select(people.c.unlinked_at).where(people.c.id == person_id)
        )
        result = await conn.execute(
            update(people)
            .where(people.c.id == person_id, *_due(cutoff))
            .values(
                forgotten_at=now,
                profile=None,
                email_hash=None,
                sealed_block_reason=None,
            )
        )
        if result.rowcount != 1:
            return False
        revoked = await conn.execute(
            update(tokens)
            .where(tokens.c.person_id == person_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        had_account = await conn.execute(delete(accounts).where(accounts.c.person_id == person_id))
        await conn.execute(delete(oidc_identities).where(oidc_identities.c.person_id == person_id))
        await conn.execute(
            update(invitations)
            .where(
                invitations.c.person_id == person_id,
                invitations.c.used_at.is_(None),
                invitations.c.superseded_at.is_(None),
            )
            .values(superseded_at=now)
        )
        await keys.audit.append_in(
            conn,
            event(
                "person.forget",
                person=person_id,
                run_id=run_id,
                unlinked_at=unlinked_at.isoformat() if unlinked_at is not None else None,
                term_days=term.days,
                tokens_revoked=int(revoked.rowcount),
                account=bool(had_account.rowcount),
            ),
        )
    return True


async def _destroy_keys(engine: AsyncEngine, keys: KeyService, certify: Certify) -> None:
    """Step 2 for every forgotten person whose key lives (a killed run's
    included): the key destroyed and certified in one transaction."""
    async with engine.connect() as conn:
        live = (
            await conn.scalars(
                select(people.c.id)
                .join(
                    child_keys,
                    and_(
                        child_keys.c.child_id == people.c.id,
                        child_keys.c.category == PERSON,
                        child_keys.c.destroyed_at.is_(None),
                    ),
                )
                .where(people.c.forgotten_at.is_not(None))
            )
        ).all()
    for person_id in live:
        await keys.destroy_child_key(person_id, PERSON, certify)


async def _certify_left_over(
    engine: AsyncEngine,
    run_id: str,
    window: timedelta | None,
    provider: str | None,
) -> None:
    """A certificate for each forgotten person's key that a version before
    session 13 destroyed and was stopped before certifying (it wrote the
    certificate in a transaction of its own, after the key's): dated when
    the key was destroyed, by this run. This version never leaves one, so
    this finds nothing once those are done."""
    certified = select(destruction_certificates.c.key_id).where(
        destruction_certificates.c.category == PERSON
    )
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(
                    child_keys.c.id,
                    child_keys.c.child_id,
                    child_keys.c.epoch,
                    child_keys.c.destroyed_at,
                )
                .join(people, people.c.id == child_keys.c.child_id)
                .where(
                    people.c.forgotten_at.is_not(None),
                    child_keys.c.category == PERSON,
                    child_keys.c.destroyed_at.is_not(None),
                    child_keys.c.id.not_in(certified),
                )
                .order_by(child_keys.c.id)
            )
        ).all()
        if not rows:
            return
        await conn.execute(
            insert(destruction_certificates),
            [
                {
                    "id": new_id(),
                    "child_id": row.child_id,
                    "category": PERSON,
                    "item_count": 0,
                    "bytes": 0,
                    "key_id": row.id,
                    "epoch": row.epoch,
                    "destroyed_at": row.destroyed_at,
                    "run_id": run_id,
                    "cause": CAUSE,
                    "backups_dark_at": (
                        None
                        if window is None or provider is None
                        else backups_dark_at(row.epoch, row.destroyed_at, window, provider)
                    ),
                    "key_provider": provider,
                }
                for row in rows
            ],
        )
