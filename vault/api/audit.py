"""Putting every call on the record, and the audit endpoints: a child's
access log, the chain's verification, and the breach question.

Each call to ``/v1/``, ``/l/``, ``/h/``, ``/x/`` and ``/auth/`` (single
sign-on) leaves at least one event: the caller (person, role, token id,
address, user agent), the action (the name its route declares,
:mod:`vault.api.routes`; ``items.read``, ``link.issue``/``link.use``),
the children and item it touched, and the outcome (``ok`` or the refusal's
code). Failed logins are events of their own (``login``).

A download cut short after its event was written leaves a second event with
how it ended (vault.share.delivery.Ending): ``aborted`` when the client went
away (a video seek, a cancelled download), or the failure's code
(``integrity_error``), with the bytes meant and sent.

Fail closed: the event is written *before* the access it records.
JSON answers are held until their event is committed (if it cannot be, the
caller gets 503 and no data); handlers that stream bytes or change state
call :func:`record_now` just before they do, and a later failure adds a
second event with its code. Refusals are recorded too, but a refusal whose
event cannot be written is still a refusal.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import select

from vault.api.access import PRINCIPAL, check, load_child
from vault.api.body import answer, read_query
from vault.api.errors import HTTP_CODES
from vault.api.models.audit import (
    TOUCHED_MAX_DAYS,
    AccessEvent,
    AccessLog,
    AccessQuery,
    Touched,
    TouchedQuery,
    Verification,
)
from vault.api.openapi import operation
from vault.api.resources import AUDIT, DB, KEYRING, KEYS
from vault.api.routes import AUDITED, action_of, route
from vault.api.trail import Trail, note, record_now, start_trail
from vault.audit import CURRENT
from vault.audit.events import iso
from vault.audit.queries import access_log, touched
from vault.audit.verify import verify
from vault.db.idsets import among
from vault.db.schema import guardians, items, people, tokens
from vault.directory.people import names_of
from vault.directory.sealing import Sealer, first_name
from vault.errors import InvalidInput, KluisError
from vault.keys.provider import audit_check
from vault.policy import Action, ChildTarget, DirectoryTarget, shows_name
from vault.rights import reasons
from vault.share.delivery import ENDED, Ending

log = logging.getLogger(__name__)


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(AUDITED):
        response: web.StreamResponse = await handler(request)
        return response
    trail = start_trail(request, action_of(request))
    reset = CURRENT.set(trail.actor)
    try:
        try:
            response = await handler(request)
        except KluisError as exc:
            await _refused(request, trail, exc.code)
            raise
        except web.HTTPException as exc:
            if exc.status >= 400:
                await _refused(request, trail, HTTP_CODES.get(exc.status, ("invalid_input",))[0])
            raise
        ending = request.get(ENDED)
        if ending is not None and trail.written:
            await _cut_short(request, trail, ending)
        elif not trail.written:
            if response.prepared:
                log.error("%s streamed before its audit event was written", trail.action)
            # Raises AuditUnavailable (503) before the answer leaves: fail closed.
            await request.app[AUDIT].record(*trail.pending("ok"))
        return response
    finally:
        CURRENT.reset(reset)


async def _refused(request: web.Request, trail: Trail, code: str) -> None:
    # Also when the access was recorded and then failed: a second event says so.
    events = [dataclasses.replace(ev, outcome=code) for ev in trail.pending(code)]
    try:
        await request.app[AUDIT].record(*events)
    except KluisError:
        log.warning("a refusal (%s) could not be recorded", code)


async def _cut_short(request: web.Request, trail: Trail, ending: Ending) -> None:
    events = [
        dataclasses.replace(ev, outcome=ending.outcome, detail={**ev.detail, "sent": ending.sent})
        for ev in trail.pending(ending.outcome)
    ]
    try:
        await request.app[AUDIT].record(*events)
    except KluisError:
        log.warning("how an answer ended (%s) could not be recorded", ending.outcome)


@operation(
    "Who accessed this child's records, and when (its guardians, the privacy officer): "
    "newest first; 'before' and 'limit' page back.",
    tags=["audit"],
    answer=AccessLog,
    query=AccessQuery,
    refusals={403: ("forbidden",), 404: ("not_found",)},
)
async def child_access_log(request: web.Request) -> web.Response:
    facts = await load_child(request)
    check(request, Action.VIEW_ACCESS_LOG, ChildTarget(facts))
    query = read_query(request, AccessQuery)
    limit = query.limit
    app = request.app
    entries = await access_log(app[DB], facts.id, limit=limit, before=query.before)
    sealer = Sealer(app[DB], app[KEYS], app[KEYRING])
    names = await names_of(app[DB], sealer, (e.actor_id for e in entries if e.actor_id))
    stated = await reasons.opened(
        app[DB], sealer, facts.id, (e.reason_id for e in entries if e.reason_id)
    )
    async with app[DB].connect() as conn:
        own = frozenset(
            (
                await conn.execute(
                    select(guardians.c.person_id).where(guardians.c.child_id == facts.id)
                )
            ).scalars()
        )
    reader = request[PRINCIPAL]
    for entry in entries:
        if entry.actor_id and not shows_name(reader, facts, entry.actor_id, entry.role, own):
            names.pop(entry.actor_id, None)  # shown as a dash, with its role
    events = [
        AccessEvent(
            at=entry.at,
            actor=_who(entry.actor_id, names),
            role=entry.role,
            action=entry.action,
            outcome=entry.outcome,
            item_id=entry.item_id,
            reason=stated.get(entry.reason_id) if entry.reason_id else None,
        )
        for entry in entries
    ]
    next_before = entries[-1].seq if len(entries) == limit else None
    return answer(AccessLog(events=events, next_before=next_before))


def _who(person: str | None, names: dict[str, str]) -> str:
    """A person's first name; the vault's own jobs as ``system``; someone whose
    own data is destroyed (or never was a person), or whom the reader may not
    see named (:func:`vault.policy.shows_name`), as a dash."""
    if person is None:
        return "system"
    return first_name(names[person]) if person in names else "\u2014"


@operation(
    "Check the whole audit chain (the privacy officer): every event, checkpoint and the "
    "signed head; problems say where.",
    tags=["audit"],
    answer=Verification,
    refusals={403: ("forbidden",)},
)
async def verify_chain(request: web.Request) -> web.Response:
    check(request, Action.VERIFY_AUDIT, DirectoryTarget())
    # The check is on the record before it runs (and counts itself).
    await record_now(request)
    result = await verify(request.app[DB], audit_check(request.app[KEYRING]))
    return answer(msgspec.convert(result.as_json(), Verification))


@operation(
    "The breach question (the privacy officer): which children and records one account "
    "('person') or one token ('token') touched in [since, until), by id, with how many "
    "calls, the first and last, and the calls by action; what 'kluis audit touched' answers.",
    tags=["audit"],
    query=TouchedQuery,
    answer=Touched,
    refusals={403: ("forbidden",)},
)
async def touched_by(request: web.Request) -> web.Response:
    check(request, Action.AUDIT_TOUCHED, DirectoryTarget())
    query = read_query(request, TouchedQuery)
    if (query.person is None) == (query.token is None):
        raise InvalidInput(
            "Send exactly one of 'person' (a person's id) or 'token' (a token's id: the "
            "16 characters after 'kl_', before the dot), with 'since' and 'until'."
        )
    if query.since >= query.until:
        raise InvalidInput("'since' must be before 'until'.")
    if query.until - query.since > timedelta(days=TOUCHED_MAX_DAYS):
        raise InvalidInput(
            f"From 'since' to 'until' may span at most {TOUCHED_MAX_DAYS} days; ask in parts."
        )
    # Who asked about whom, and for when, is on the record before the log is read
    # (ids and moments only, as the command line's event).
    note(
        request,
        person=query.person,
        token=query.token,
        since=iso(query.since),
        until=iso(query.until),
    )
    await record_now(request)
    engine = request.app[DB]
    found = await touched(
        engine, person=query.person, token=query.token, since=query.since, until=query.until
    )
    async with engine.connect() as conn:
        if query.person is not None:
            known = await conn.scalar(select(people.c.id).where(people.c.id == query.person))
        else:
            known = await conn.scalar(select(tokens.c.id).where(tokens.c.id == query.token))
        rows = await conn.execute(
            select(items.c.id, items.c.kind).where(among(conn, items.c.id, found.items))
        )
        kinds = {row.id: row.kind for row in rows}
    return answer(
        Touched(
            person=query.person,
            token=query.token,
            since=query.since,
            until=query.until,
            known=known is not None,
            events=found.events,
            refused=found.refused,
            first=found.first,
            last=found.last,
            children=dict(sorted(found.children.items())),
            items=dict(sorted(found.items.items())),
            kinds=kinds,
            actions=dict(sorted(found.actions.items())),
        )
    )


def setup(app: web.Application) -> None:
    route(
        app, "GET", "/v1/children/{id}/access-log", child_access_log, audit="audit.child_access_log"
    )
    route(app, "GET", "/v1/audit/verify", verify_chain, audit="audit.verify_chain")
    route(app, "GET", "/v1/audit/touched", touched_by, audit="audit.touched")
