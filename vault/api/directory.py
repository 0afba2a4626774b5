"""Directory endpoints (API.md "Directory"): the admin manages people,
locations, groups, children, placements, guardians and mentors; anyone
related may read a child's directory facts (``GET /v1/children/{id}``)."""

from __future__ import annotations

from datetime import date, timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.api.access import check, child_for, now
from vault.api.accounts import app_url
from vault.api.body import Field, read_json
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS, SETTINGS
from vault.api.retention import retention as retention_job
from vault.api.trail import note, record_now
from vault.directory import children, people, places
from vault.errors import InvalidInput
from vault.mail import notices
from vault.policy import ROLES, Action, DirectoryTarget

_ADMIN_ERRORS = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden or blocked",
    404: "not_found",
    422: "bsn_not_stored",
}


def _admin(request: web.Request) -> None:
    check(request, Action.MANAGE_DIRECTORY, DirectoryTarget())


def _token_ttl(request: web.Request) -> timedelta:
    return timedelta(days=request.app[SETTINGS].auth.token_ttl_days)


def _no_content() -> web.Response:
    return web.Response(status=204)


async def _changing(request: web.Request, *, child: bool = False, **detail: str) -> None:
    """Put a change of the directory on the record before it is made.

    Creations are recorded once they have their id, before the answer leaves.
    """
    target = request.match_info["id"]
    note(request, children=[target] if child else (), target=target, **detail)
    await record_now(request)


@operation(
    "Create a person with a role; the token is shown once.",
    tags=["directory"],
    responses={201: "{id, token}", **_ADMIN_ERRORS},
)
async def create_person(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(
        request,
        {
            "name": Field(),
            "email": Field(required=False, nullable=True),
            "role": Field(choices=ROLES),
        },
        directory=True,
    )
    email = body.get("email")
    if email is not None and ("@" not in email or " " in email):
        raise InvalidInput("The field 'email' must be an e-mail address.")
    person_id, token = await people.create_person(
        request.app[DB],
        body["name"],
        email,
        body["role"],
        now(request),
        token_ttl=_token_ttl(request),
    )
    note(request, target=person_id, role=body["role"])
    return web.json_response({"id": person_id, "token": token}, status=201)


@operation(
    "Issue another token for a person (shown once).",
    tags=["directory"],
    responses={201: "{token}", **_ADMIN_ERRORS},
)
async def issue_token(request: web.Request) -> web.Response:
    _admin(request)
    token = await people.issue_token(
        request.app[DB], request.match_info["id"], now(request), _token_ttl(request)
    )
    note(request, target=request.match_info["id"])
    return web.json_response({"token": token}, status=201)


@operation(
    "Revoke every token of a person (a lost device).",
    tags=["directory"],
    responses={204: "Revoked.", **_ADMIN_ERRORS},
)
async def revoke_tokens(request: web.Request) -> web.Response:
    _admin(request)
    await _changing(request)
    await people.revoke_tokens(request.app[DB], request.match_info["id"], now(request))
    return _no_content()


@operation(
    "Block a person: every call of theirs answers 'blocked'.",
    tags=["directory"],
    responses={204: "Blocked.", **_ADMIN_ERRORS},
)
async def block(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(request, {"reason": Field()}, directory=True)
    await _changing(request)
    await people.set_block(request.app[DB], request.match_info["id"], body["reason"], now(request))
    return _no_content()


@operation("Lift a block.", tags=["directory"], responses={204: "Unblocked.", **_ADMIN_ERRORS})
async def unblock(request: web.Request) -> web.Response:
    _admin(request)
    await _changing(request)
    await people.set_block(request.app[DB], request.match_info["id"], None, now(request))
    return _no_content()


@operation("Create a location.", tags=["directory"], responses={201: "{id}", **_ADMIN_ERRORS})
async def create_location(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(request, {"name": Field()}, directory=True)
    location_id = await places.create_location(request.app[DB], body["name"], now(request))
    note(request, target=location_id)
    return web.json_response({"id": location_id}, status=201)


@operation(
    "Make a location manager manage a location.",
    tags=["directory"],
    responses={204: "Done.", **_ADMIN_ERRORS},
)
async def add_manager(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(request, {"person_id": Field(type="id")}, directory=True)
    await _changing(request, person=body["person_id"])
    await places.add_manager(request.app[DB], request.match_info["id"], body["person_id"])
    return _no_content()


@operation(
    "Create a group at a location.", tags=["directory"], responses={201: "{id}", **_ADMIN_ERRORS}
)
async def create_group(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(
        request, {"location_id": Field(type="id"), "name": Field()}, directory=True
    )
    group_id = await places.create_group(
        request.app[DB], body["location_id"], body["name"], now(request)
    )
    note(request, target=group_id)
    return web.json_response({"id": group_id}, status=201)


@operation(
    "Add a staff member to a group.", tags=["directory"], responses={204: "Done.", **_ADMIN_ERRORS}
)
async def add_staff(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(request, {"person_id": Field(type="id")}, directory=True)
    await _changing(request, person=body["person_id"])
    await places.add_staff(request.app[DB], request.match_info["id"], body["person_id"])
    return _no_content()


@operation(
    "Register a child in a group; names and birth date are stored encrypted.",
    tags=["directory"],
    responses={201: "{id}", **_ADMIN_ERRORS},
)
async def create_child(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(
        request,
        {
            "first_name": Field(),
            "last_name": Field(),
            "birth_date": Field(type="date"),
            "group_id": Field(type="id"),
        },
        directory=True,
    )
    if body["birth_date"] > now(request).date():
        raise InvalidInput("The field 'birth_date' lies in the future.")
    profile = children.Profile(body["first_name"], body["last_name"], body["birth_date"])
    child_id = await children.create_child(
        request.app[DB], request.app[KEYS], profile, body["group_id"], now(request)
    )
    note(request, children=[child_id], target=child_id)
    return web.json_response({"id": child_id}, status=201)


@operation(
    "Set the child's placement (contract) dates; end_date null while it runs. A new end date "
    "is mailed to every guardian (until when the records stay visible).",
    tags=["directory"],
    responses={200: "The placement.", **_ADMIN_ERRORS},
)
async def set_placement(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(
        request,
        {"start_date": Field(type="date"), "end_date": Field(type="date", nullable=True)},
        directory=True,
    )
    await _changing(request, child=True)
    end = body["end_date"]
    child_id = request.match_info["id"]
    moment = now(request)
    window = timedelta(weeks=request.app[SETTINGS].policy.window_weeks)

    async def tell_guardians(conn: AsyncConnection, previous: date | None) -> None:
        # A new or changed end date: every guardian learns until when to download.
        if end is not None and end != previous:
            await notices.contract_end(
                conn, request.app[KEYRING], child_id, end, end + window, app_url(request), moment
            )

    await children.set_placement(
        request.app[DB], child_id, body["start_date"], end, then=tell_guardians
    )
    # The child keys move to the epochs the new dates call for at once.
    await retention_job(request.app).reschedule(request.match_info["id"], end, now(request))
    return web.json_response(
        {
            "start_date": body["start_date"].isoformat(),
            "end_date": end.isoformat() if end else None,
        }
    )


@operation(
    "Add a guardian to a child.",
    tags=["directory"],
    responses={204: "Done.", 409: "conflict", **_ADMIN_ERRORS},
)
async def add_guardian(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(
        request,
        {
            "person_id": Field(type="id"),
            "relation": Field(choices=("contract_parent", "co_parent")),
            "household": Field(choices=("shared", "separate")),
        },
        directory=True,
    )
    await _changing(request, child=True, person=body["person_id"])
    await children.add_guardian(
        request.app[DB],
        request.match_info["id"],
        body["person_id"],
        body["relation"],
        body["household"],
        now(request),
    )
    return _no_content()


@operation(
    "Set the child's mentor (a staff member).",
    tags=["directory"],
    responses={204: "Done.", **_ADMIN_ERRORS},
)
async def set_mentor(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_json(request, {"person_id": Field(type="id")}, directory=True)
    await _changing(request, child=True, person=body["person_id"])
    await children.set_mentor(request.app[DB], request.match_info["id"], body["person_id"])
    return _no_content()


@operation(
    "A child's directory facts: name, birth date, group, placement.",
    tags=["directory"],
    responses={
        200: "The child.",
        401: "unauthenticated",
        403: "outside_window or blocked",
        404: "not_found",
    },
)
async def get_child(request: web.Request) -> web.Response:
    facts = await child_for(request, Action.VIEW_CHILD)
    profile = await children.read_profile(request.app[DB], request.app[KEYS], facts.id)
    return web.json_response(
        {
            "id": facts.id,
            "first_name": profile.first_name,
            "last_name": profile.last_name,
            "birth_date": profile.birth_date.isoformat(),
            "group_id": facts.group_id,
            "placement": {
                "start_date": facts.placement_start.isoformat() if facts.placement_start else None,
                "end_date": facts.placement_end.isoformat() if facts.placement_end else None,
            },
        }
    )


def setup(app: web.Application) -> None:
    add = app.router
    add.add_post("/v1/people", create_person)
    add.add_post("/v1/people/{id}/tokens", issue_token)
    add.add_delete("/v1/people/{id}/tokens", revoke_tokens)
    add.add_post("/v1/people/{id}/block", block)
    add.add_delete("/v1/people/{id}/block", unblock)
    add.add_post("/v1/locations", create_location)
    add.add_post("/v1/locations/{id}/managers", add_manager)
    add.add_post("/v1/groups", create_group)
    add.add_post("/v1/groups/{id}/staff", add_staff)
    add.add_post("/v1/children", create_child)
    add.add_get("/v1/children/{id}", get_child)
    add.add_put("/v1/children/{id}/placement", set_placement)
    add.add_post("/v1/children/{id}/guardians", add_guardian)
    add.add_put("/v1/children/{id}/mentor", set_mentor)
