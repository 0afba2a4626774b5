"""Directory endpoints (API.md "Directory"): the admin manages people,
locations, groups, children, placements, guardians and mentors; anyone
related may read a child's directory facts (``GET /v1/children/{id}``)."""

from __future__ import annotations

from datetime import date, timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.api.access import check, child_for, now
from vault.api.accounts import app_url
from vault.api.body import answer, read_body
from vault.api.models.common import Created
from vault.api.models.directory import (
    BlockRequest,
    ChildPlacement,
    ChildView,
    NewChild,
    NewGroup,
    NewGuardian,
    NewLocation,
    NewPerson,
    PersonCreated,
    PersonRef,
    Placement,
    PlacementDates,
    TokenIssued,
)
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS, SETTINGS
from vault.api.retention import retention as retention_job
from vault.api.routes import route
from vault.api.trail import note, record_now
from vault.directory import children, people, places
from vault.directory.sealing import Sealer
from vault.errors import InvalidInput
from vault.mail import notices
from vault.policy import Action, DirectoryTarget

#: The admin's calls refuse other roles; those on an {id} also know not_found.
_ADMIN = {403: ("forbidden",)}
_ADMIN_ON = {403: ("forbidden",), 404: ("not_found",)}
#: Linking a person whose own data was destroyed (vault/directory/links.py),
#: or giving them a token, is a conflict.
_LINKING = {**_ADMIN_ON, 409: ("conflict",)}


def admin_only(request: web.Request) -> None:
    check(request, Action.MANAGE_DIRECTORY, DirectoryTarget())


def sealer(app: web.Application) -> Sealer:
    """Seals and opens directory text (vault/directory/sealing.py)."""
    return Sealer(app[DB], app[KEYS], app[KEYRING])


def _token_ttl(request: web.Request) -> timedelta:
    return timedelta(days=request.app[SETTINGS].auth.token_ttl_days)


def no_content() -> web.Response:
    return web.Response(status=204)


async def changing(request: web.Request, *, child: bool = False, **detail: str) -> None:
    """Put a change of the directory on the record before it is made.

    Creations are recorded once they have their id, before the answer leaves.
    """
    target = request.match_info["id"]
    note(request, children=[target] if child else (), target=target, **detail)
    await record_now(request)


@operation(
    "Create a person with a role; the token is shown once.",
    tags=["directory"],
    body=NewPerson,
    answer=(201, PersonCreated),
    refusals=_ADMIN,
)
async def create_person(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, NewPerson)
    person_id, token = await people.create_person(
        request.app[DB],
        sealer(request.app),
        body.name,
        body.email,
        body.role,
        now(request),
        token_ttl=_token_ttl(request),
    )
    note(request, target=person_id, role=body.role)
    return answer(PersonCreated(id=person_id, token=token), status=201)


@operation(
    "Issue another token for a person (shown once).",
    tags=["directory"],
    answer=(201, TokenIssued),
    refusals=_LINKING,
)
async def issue_token(request: web.Request) -> web.Response:
    admin_only(request)
    token = await people.issue_token(
        request.app[DB], request.match_info["id"], now(request), _token_ttl(request)
    )
    note(request, target=request.match_info["id"])
    return answer(TokenIssued(token=token), status=201)


@operation(
    "Revoke every token of a person (a lost device).",
    tags=["directory"],
    answer=(204, None),
    refusals=_ADMIN_ON,
)
async def revoke_tokens(request: web.Request) -> web.Response:
    admin_only(request)
    await changing(request)
    await people.revoke_tokens(request.app[DB], request.match_info["id"], now(request))
    return no_content()


@operation(
    "Block a person: every call of theirs answers 'blocked'.",
    tags=["directory"],
    body=BlockRequest,
    answer=(204, None),
    refusals=_ADMIN_ON,
)
async def block(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, BlockRequest)
    await changing(request)
    await people.set_block(
        request.app[DB], sealer(request.app), request.match_info["id"], body.reason, now(request)
    )
    return no_content()


@operation("Lift a block.", tags=["directory"], answer=(204, None), refusals=_ADMIN_ON)
async def unblock(request: web.Request) -> web.Response:
    admin_only(request)
    await changing(request)
    await people.set_block(
        request.app[DB], sealer(request.app), request.match_info["id"], None, now(request)
    )
    return no_content()


@operation(
    "Create a location.",
    tags=["directory"],
    body=NewLocation,
    answer=(201, Created),
    refusals=_ADMIN,
)
async def create_location(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, NewLocation)
    location_id = await places.create_location(
        request.app[DB], sealer(request.app), body.name, now(request)
    )
    note(request, target=location_id)
    return answer(Created(id=location_id), status=201)


@operation(
    "Make a location manager manage a location.",
    tags=["directory"],
    body=PersonRef,
    answer=(204, None),
    refusals=_LINKING,
)
async def add_manager(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, PersonRef)
    await changing(request, person=body.person_id)
    await places.add_manager(
        request.app[DB], request.match_info["id"], body.person_id, now(request)
    )
    return no_content()


@operation(
    "Create a group at a location.",
    tags=["directory"],
    body=NewGroup,
    answer=(201, Created),
    refusals=_ADMIN_ON,
)
async def create_group(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, NewGroup)
    group_id = await places.create_group(
        request.app[DB], sealer(request.app), body.location_id, body.name, now(request)
    )
    note(request, target=group_id)
    return answer(Created(id=group_id), status=201)


@operation(
    "Add a staff member to a group.",
    tags=["directory"],
    body=PersonRef,
    answer=(204, None),
    refusals=_LINKING,
)
async def add_staff(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, PersonRef)
    await changing(request, person=body.person_id)
    await places.add_staff(request.app[DB], request.match_info["id"], body.person_id, now(request))
    return no_content()


@operation(
    "Register a child in a group; names and birth date are stored encrypted.",
    tags=["directory"],
    body=NewChild,
    answer=(201, Created),
    refusals=_ADMIN_ON,
)
async def create_child(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, NewChild)
    if body.birth_date > now(request).date():
        raise InvalidInput("The field 'birth_date' lies in the future.")
    profile = children.Profile(body.first_name, body.last_name, body.birth_date)
    child_id = await children.create_child(
        request.app[DB], request.app[KEYS], profile, body.group_id, now(request)
    )
    note(request, children=[child_id], target=child_id)
    return answer(Created(id=child_id), status=201)


@operation(
    "Set the child's placement (contract) dates; end_date null while it runs. A new end date "
    "is mailed to every guardian (until when the records stay visible).",
    tags=["directory"],
    body=PlacementDates,
    answer=Placement,
    refusals=_ADMIN_ON,
)
async def set_placement(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, PlacementDates)
    await changing(request, child=True)
    end = body.end_date
    child_id = request.match_info["id"]
    moment = now(request)
    window = timedelta(weeks=request.app[SETTINGS].policy.window_weeks)

    async def tell_guardians(conn: AsyncConnection, previous: date | None) -> None:
        # A new or changed end date: every guardian learns until when to download.
        if end is not None and end != previous:
            await notices.contract_end(
                conn, sealer(request.app), child_id, end, end + window, app_url(request), moment
            )

    await children.set_placement(
        request.app[DB], child_id, body.start_date, end, then=tell_guardians
    )
    # The child keys move to the epochs the new dates call for at once.
    await retention_job(request.app).reschedule(request.match_info["id"], end, now(request))
    return answer(Placement(start_date=body.start_date, end_date=end))


@operation(
    "Add a guardian to a child.",
    tags=["directory"],
    body=NewGuardian,
    answer=(204, None),
    refusals={**_ADMIN_ON, 409: ("conflict",)},
)
async def add_guardian(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, NewGuardian)
    await changing(request, child=True, person=body.person_id)
    await children.add_guardian(
        request.app[DB],
        request.match_info["id"],
        body.person_id,
        body.relation,
        body.household,
        now(request),
    )
    return no_content()


@operation(
    "Set the child's mentor (a staff member).",
    tags=["directory"],
    body=PersonRef,
    answer=(204, None),
    refusals=_LINKING,
)
async def set_mentor(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, PersonRef)
    await changing(request, child=True, person=body.person_id)
    await children.set_mentor(
        request.app[DB], request.match_info["id"], body.person_id, now(request)
    )
    return no_content()


@operation(
    "A child's directory facts: name, birth date, group, placement.",
    tags=["directory"],
    answer=ChildView,
    refusals={403: ("forbidden", "outside_window"), 404: ("not_found",), 410: ("destroyed",)},
)
async def get_child(request: web.Request) -> web.Response:
    facts = await child_for(request, Action.VIEW_CHILD)
    profile = await children.read_profile(request.app[DB], request.app[KEYS], facts.id)
    return answer(
        ChildView(
            id=facts.id,
            first_name=profile.first_name,
            last_name=profile.last_name,
            birth_date=profile.birth_date,
            group_id=facts.group_id,
            placement=ChildPlacement(
                start_date=facts.placement_start, end_date=facts.placement_end
            ),
        )
    )


def setup(app: web.Application) -> None:
    route(app, "POST", "/v1/people", create_person, audit="directory.create_person")
    route(app, "POST", "/v1/people/{id}/tokens", issue_token, audit="directory.issue_token")
    route(app, "DELETE", "/v1/people/{id}/tokens", revoke_tokens, audit="directory.revoke_tokens")
    route(app, "POST", "/v1/people/{id}/block", block, audit="directory.block")
    route(app, "DELETE", "/v1/people/{id}/block", unblock, audit="directory.unblock")
    route(app, "POST", "/v1/locations", create_location, audit="directory.create_location")
    route(app, "POST", "/v1/locations/{id}/managers", add_manager, audit="directory.add_manager")
    route(app, "POST", "/v1/groups", create_group, audit="directory.create_group")
    route(app, "POST", "/v1/groups/{id}/staff", add_staff, audit="directory.add_staff")
    route(app, "POST", "/v1/children", create_child, audit="directory.create_child")
    route(app, "GET", "/v1/children/{id}", get_child, audit="directory.get_child")
    route(app, "PUT", "/v1/children/{id}/placement", set_placement, audit="directory.set_placement")
    route(app, "POST", "/v1/children/{id}/guardians", add_guardian, audit="directory.add_guardian")
    route(app, "PUT", "/v1/children/{id}/mentor", set_mentor, audit="directory.set_mentor")
