"""Retention and rights endpoints (API.md "Retention and rights")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import insert, select, update

from vault.api.access import PRINCIPAL, check, child_for, now
from vault.api.body import Field, read_json
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS, READER, SETTINGS, STORE
from vault.api.trail import note, record_now
from vault.db.schema import holds
from vault.directory.children import child_facts
from vault.errors import InvalidInput, NotFound
from vault.policy import FINANCIAL, KINDS, Action, ChildTarget, DirectoryTarget
from vault.retention.job import Retention
from vault.tokens import new_id

_ERRORS = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden, outside_window or blocked",
    404: "not_found",
}


def retention(app: web.Application) -> Retention:
    return Retention(app[DB], app[STORE], app[KEYS], app[KEYRING], app[SETTINGS])


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@operation(
    "When each category of the child's records is archived and destroyed.",
    tags=["retention"],
    responses={200: "The schedule.", **_ERRORS},
)
async def view(request: web.Request) -> web.Response:
    child = await child_for(request, Action.VIEW_RETENTION)
    plan = await retention(request.app).schedule_of(child)
    return web.json_response(
        {
            "placement_end": _day(child.placement_end),
            "categories": {
                kind: {
                    "visible_until": _day(plan[kind].visible_until),
                    "archived_from": _day(plan[kind].archived_from),
                    "destroy_at": _day(plan[kind].destroy_at),
                    "statutory": plan[kind].statutory,
                    "hold": plan[kind].hold,
                }
                for kind in KINDS
            },
        }
    )


@operation(
    "Place a legal hold: nothing under it is destroyed until it is lifted.",
    tags=["retention"],
    responses={201: "{id}", **_ERRORS},
)
async def place_hold(request: web.Request) -> web.Response:
    child = await child_for(request, Action.MANAGE_HOLDS)
    body = await read_json(
        request, {"category": Field(required=False, choices=KINDS), "reason": Field()}
    )
    hold_id = new_id()
    note(request, hold=hold_id, category=body.get("category"))
    await record_now(request)
    async with request.app[DB].begin() as conn:
        await conn.execute(
            insert(holds).values(
                id=hold_id,
                child_id=child.id,
                category=body.get("category"),
                reason=body["reason"],
                created_at=now(request),
                created_by=request[PRINCIPAL].id,
            )
        )
    await retention(request.app).reschedule(child.id, child.placement_end, now(request))
    return web.json_response({"id": hold_id}, status=201)


@operation(
    "Lift a legal hold; destruction is scheduled again.",
    tags=["retention"],
    responses={204: "Lifted.", **_ERRORS},
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
    responses={200: "{results}", **_ERRORS},
)
async def erasure(request: web.Request) -> web.Response:
    child = await child_for(request, Action.REQUEST_ERASURE)
    body = await read_json(
        request, {"categories": Field(type="list", required=False, choices=KINDS)}
    )
    wanted = body.get("categories", list(KINDS))
    note(request, categories=sorted(set(wanted)))
    await record_now(request)
    job = retention(request.app)
    plan = await job.schedule_of(child)
    moment = now(request)
    results: dict[str, Any] = {}
    request_id = new_id()
    for category in dict.fromkeys(wanted):
        entry = plan[category]
        if category in FINANCIAL:
            results[category] = {
                "erased": False,
                "reason": "statutory_retention",
                "destroy_at": _day(entry.destroy_at),
            }
        elif entry.hold:
            results[category] = {"erased": False, "reason": "legal_hold", "destroy_at": None}
        else:
            await job.destroy(child.id, category, moment, request_id, "erasure")
            results[category] = {"erased": True}
    return web.json_response({"results": results})


@operation(
    "Run the retention job now (the privacy officer).",
    tags=["retention"],
    responses={200: "The report.", 409: "conflict", **_ERRORS},
)
async def run(request: web.Request) -> web.Response:
    check(request, Action.RUN_RETENTION, DirectoryTarget())
    body = await read_json(
        request, {"now": Field(required=False), "dry_run": Field(type="bool", required=False)}
    )
    moment = now(request)
    if "now" in body:
        try:
            moment = datetime.fromisoformat(body["now"].replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("'now' must be an ISO 8601 timestamp.") from None
        if moment.tzinfo is None:
            raise InvalidInput("'now' must carry a time zone (…Z).")
    note(request, dry_run=body.get("dry_run", False), now=moment.isoformat())
    await record_now(request)
    report = await retention(request.app).run(moment, dry_run=body.get("dry_run", False))
    return web.json_response(report.as_json())


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/children/{id}/retention", view)
    app.router.add_post("/v1/children/{id}/holds", place_hold)
    app.router.add_delete("/v1/holds/{id}", lift_hold)
    app.router.add_post("/v1/children/{id}/erasure", erasure)
    app.router.add_post("/v1/retention/run", run)
