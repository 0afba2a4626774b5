"""The demo's organisation in the directory: places, people with passwords, children.

As the directory calls of API.md do it (vault/api/directory.py): the
location and groups sealed, people sealed with their first token (revoked
here: nobody holds it, people sign in with their password), staff in their
groups, the manager at the location, children with their sealed profile,
placement (and its retention schedule), guardians and mentor; then each
child's contract parent grants the sample's consents, as
``PUT /v1/children/{id}/consents/{type}`` does, asked of the policy first.

Passwords follow the sign-in rules (:func:`check_new_password`) and are
stored as accepting an invitation stores them (:mod:`vault.accounts.store`,
Argon2id by :class:`~vault.accounts.passwords.Passwords`), without an
invitation mail to an address that leads nowhere.

May touch: the directory, the sign-in accounts, the consent ledger, child
keys (their epochs), the audit log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from datetime import timedelta

from vault.accounts import store
from vault.accounts.passwords import Passwords, check_new_password
from vault.api.models.consents import ConsentChange
from vault.api.models.directory import (
    NewChild,
    NewGroup,
    NewGuardian,
    NewLocation,
    NewPerson,
    PlacementDates,
)
from vault.demo import sample
from vault.demo.acting import Acting, body
from vault.directory import children as kids
from vault.directory import consent, people, places
from vault.directory.sealing import email_hash
from vault.errors import Conflict, InvalidInput
from vault.policy import Action, ChildTarget
from vault.wiring import utcnow

#: Letters and digits no one misreads (no 0/O, 1/l/I), in groups of four.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclasses.dataclass(frozen=True)
class Account:
    role: str
    name: str
    email: str
    password: str = dataclasses.field(repr=False)
    shows: str


def new_password(email: str) -> str:
    """A random password of 16 characters (about 79 bits) the sign-in rules accept."""
    while True:
        text = "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
        try:
            return check_new_password(text, email=email)
        except InvalidInput:  # a BSN-shaped run of digits: drawn again
            continue


async def organisation(run: Acting) -> list[Account]:
    """The whole directory of the sample; the accounts with their passwords."""
    run.as_operator()
    location = body(NewLocation, name=sample.LOCATION)
    run.ids["location"] = await places.create_location(
        run.engine, run.sealer, location.name, utcnow()
    )
    await run.record("directory.create_location", target=run.ids["location"])
    for key, name in sample.GROUPS.items():
        group = body(NewGroup, location_id=run.ids["location"], name=name)
        run.ids[key] = await places.create_group(
            run.engine, run.sealer, group.location_id, group.name, utcnow()
        )
        await run.record("directory.create_group", target=run.ids[key])
    passwords = Passwords()
    try:
        # Side by side: the Argon2id hashes take turns on the hasher's threads.
        accounts = await asyncio.gather(*(person(run, p, passwords) for p in sample.PEOPLE))
    finally:
        passwords.close()
    for kid in sample.KIDS:
        await child(run, kid)
    return list(accounts)


async def person(run: Acting, who: sample.Person, passwords: Passwords) -> Account:
    """A person, their place in the organisation, and a password to sign in with."""
    given = body(NewPerson, name=who.name, role=who.role, email=who.email)
    assert given.email is not None
    ttl = timedelta(days=run.vault.settings.auth.token_ttl_days)
    person_id, _ = await people.create_person(
        run.engine, run.sealer, given.name, given.email, given.role, utcnow(), token_ttl=ttl
    )
    run.ids[who.key] = person_id
    await run.record("directory.create_person", target=person_id, role=who.role)
    await run.record("directory.revoke_tokens", target=person_id)
    await people.revoke_tokens(run.engine, person_id, utcnow())
    for group in who.groups:
        await run.record("directory.add_staff", target=run.ids[group], person=person_id)
        await places.add_staff(run.engine, run.ids[group], person_id)
    if who.role == "location_manager":
        await run.record("directory.add_manager", target=run.ids["location"], person=person_id)
        await places.add_manager(run.engine, run.ids["location"], person_id)
    password = new_password(given.email)
    hashed = await passwords.hash(password)
    await run.record("demo.password", target=person_id)
    address = email_hash(run.sealer.provider, given.email)
    async with run.engine.begin() as conn:
        if await store.address_taken(conn, address, person_id):
            raise Conflict("Another account signs in with a demo address; nothing more added.")
        await store.set_password(conn, person_id, address, hashed, utcnow())
    return Account(who.role, who.name, given.email, password, who.shows)


async def child(run: Acting, kid: sample.Kid) -> None:
    """A child: profile, placement, guardians, mentor, then the parent's consents."""
    new = body(
        NewChild,
        first_name=kid.first_name,
        last_name=kid.last_name,
        birth_date=run.today - timedelta(days=kid.born_days_ago),
        group_id=run.ids[kid.group],
    )
    profile = kids.Profile(new.first_name, new.last_name, new.birth_date)
    child_id = await kids.create_child(run.engine, run.vault.keys, profile, new.group_id, utcnow())
    run.ids[kid.key] = child_id
    await run.record("directory.create_child", children=[child_id], target=child_id)
    dates = body(
        PlacementDates,
        start_date=run.today - timedelta(days=kid.started_days_ago),
        end_date=None,
    )
    await run.record("directory.set_placement", children=[child_id], target=child_id)
    await kids.set_placement(run.engine, child_id, dates.start_date, None)
    await run.retention.reschedule(child_id, None, utcnow())
    for guardian in kid.guardians:
        link = body(
            NewGuardian,
            person_id=run.ids[guardian.person],
            relation=guardian.relation,
            household=guardian.household,
        )
        await run.record(
            "directory.add_guardian", children=[child_id], target=child_id, person=link.person_id
        )
        await kids.add_guardian(
            run.engine, child_id, link.person_id, link.relation, link.household, utcnow()
        )
    if kid.mentor is not None:
        mentor = run.ids[kid.mentor]
        await run.record(
            "directory.set_mentor", children=[child_id], target=child_id, person=mentor
        )
        await kids.set_mentor(run.engine, child_id, mentor)
    parent = await run.as_person(kid.guardians[0].person)
    for kind in kid.consents:
        change = body(ConsentChange, granted=True)
        run.allow(parent, Action.GRANT_CONSENT, ChildTarget(await run.child(kid.key)))
        await run.record(
            "consents.change", children=[child_id], consent=kind, granted=change.granted
        )
        await consent.record(run.engine, child_id, kind, change.granted, parent.id, utcnow())
    run.as_operator()
