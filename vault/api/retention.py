"""Retention and rights endpoints (API.md "Retention and rights")."""

from __future__ import annotations

import msgspec
from aiohttp import web
from sqlalchemy import insert, select, update

from vault.api.access import PRINCIPAL, check, child_for, now
from vault.api.body import answer, read_body
from vault.api.models.common import Created
from vault.api.models.retention import (
    CategorySchedule,
    Erasure,
    ErasureRequest,
    ErasureResults,
    HoldRequest,
    RunReport,
    RunRequest,
    Schedule,
)
from vault.api.models.types import Kind
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS, READER, SETTINGS, STORE
from vault.api.routes import route
from vault.api.trail import note, record_now
from vault.db.schema import holds
from vault.directory.children import child_facts
from vault.directory.sealing import Sealer
from vault.errors import NotFound
from vault.policy import FINANCIAL, KINDS, Action, ChildTarget, DirectoryTarget
from vault.retention.job import Retention
from vault.tokens import new_id

_ON_CHILD = {403: ("forbidden", "outside_window"), 404: ("not_found",)}


def retention(app: web.Application) -> Retention:
    return Retention(app[DB], app[STORE], app[KEYS], app[KEYRING], app[SETTINGS])


@operation(
    "When each category of the child's records is archived and destroyed.",
    tags=["retention"],
    answer=Schedule,
    refusals=_ON_CHILD,
)
async def view(request: web.Request) -> web.Response:
    child = await child_for(request, Action.VIEW_RETENTION)
    plan = await retention(request.app).schedule_of(child)
    return answer(
        Schedule(
            placement_end=child.placement_end,
            categories=msgspec.convert(
                {kind: plan[kind] for kind in KINDS},
                dict[Kind, CategorySchedule],
                from_attributes=True,
            ),
        )
    )


@operation(
    "Place a legal hold: nothing under it is destroyed until it is lifted.",
    tags=["retention"],
    body=HoldRequest,
    answer=(201, Created),
    refusals=_ON_CHILD,
)
async def place_hold(request: web.Request) -> web.Response:
    child = await child_for(request, Action.MANAGE_HOLDS)
    body = await read_body(request, HoldRequest)
    hold_id = new_id()
    note(request, hold=hold_id, category=body.category)
    await record_now(request)
    app = request.app
    reason = await Sealer(app[DB], app[KEYS], app[KEYRING]).seal_for_child(
        child.id, f"hold:{hold_id}", body.reason
    )
    async with request.app[DB].begin() as conn:
        await conn.execute(
            insert(holds).values(
                id=hold_id,
                child_id=child.id,
                category=body.category,
                sealed_reason=reason,
                created_at=now(request),
                created_by=request[PRINCIPAL].id,
            )
        )
    await retention(request.app).reschedule(child.id, child.placement_end, now(request))
    return answer(Created(id=hold_id), status=201)


@operation(
    "Lift a legal hold; destruction is scheduled again.",
    tags=["retention"],
    answer=(204, None),
    refusals=_ON_CHILD,
)
async def lift_hold(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        child_id = await conn.scalar(
            select(holds.c.child_id).where(
                holds.c.id == request.match_info["id"], holds.c.lifted_at.is_(None)
            )
        )
    facts = await child_facts(request.app[READER], child_id) if child_id else None
    if facts is None:
        raise NotFound("There is no open hold with this id.")
    note(request, children=[facts.id], hold=request.match_info["id"])
    check(request, Action.MANAGE_HOLDS, ChildTarget(facts))
    await record_now(request)
    async with request.app[DB].begin() as conn:
        await conn.execute(
            update(holds)
            .where(holds.c.id == request.match_info["id"])
            .values(lifted_at=now(request), lifted_by=request[PRINCIPAL].id)
        )
    return web.Response(status=204)


@operation(
    "Ask for erasure: non-statutory categories are destroyed now (keys first); "
    "statutory ones are refused with the date of their automatic destruction.",
    tags=["retention"],
    body=ErasureRequest,
    answer=ErasureResults,
    refusals={**_ON_CHILD, 410: ("destroyed",)},
)
async def erasure(request: web.Request) -> web.Response:
    child = await child_for(request, Action.REQUEST_ERASURE)
    body = await read_body(request, ErasureRequest)
    wanted: list[str] = list(KINDS) if body.categories is None else list(body.categories)
    note(request, categories=sorted(set(wanted)))
    await record_now(request)
    job = retention(request.app)
    plan = await job.schedule_of(child)
    moment = now(request)
    results: dict[str, Erasure] = {}
    request_id = new_id()
    for category in dict.fromkeys(wanted):
        entry = plan[category]
        if category in FINANCIAL:
            results[category] = Erasure(
                erased=False, reason="statutory_retention", destroy_at=entry.destroy_at
            )
        elif entry.hold:
            results[category] = Erasure(erased=False, reason="legal_hold", destroy_at=None)
        else:
            await job.destroy(child.id, category, moment, request_id, "erasure")
            results[category] = Erasure(erased=True)
    return answer(ErasureResults(results=results))  # type: ignore[arg-type]


@operation(
    "Run the retention job now (the privacy officer).",
    tags=["retention"],
    body=RunRequest,
    answer=RunReport,
    refusals={403: ("forbidden",), 409: ("conflict",)},
)
async def run(request: web.Request) -> web.Response:
    check(request, Action.RUN_RETENTION, DirectoryTarget())
    body = await read_body(request, RunRequest)
    moment = now(request) if body.now is None else body.now
    note(request, dry_run=body.dry_run, now=moment.isoformat())
    await record_now(request)
    report = await retention(request.app).run(moment, dry_run=body.dry_run)
    return answer(msgspec.convert(report.as_json(), RunReport))


def setup(app: web.Application) -> None:
    route(app, "GET", "/v1/children/{id}/retention", view, audit="retention.view")
    route(app, "POST", "/v1/children/{id}/holds", place_hold, audit="retention.place_hold")
    route(app, "DELETE", "/v1/holds/{id}", lift_hold, audit="retention.lift_hold")
    route(app, "POST", "/v1/children/{id}/erasure", erasure, audit="retention.erasure")
    route(app, "POST", "/v1/retention/run", run, audit="retention.run")
