"""Rectification of the directory (API.md 1.1 "Rectification"): a child's
name, birth date and group; a guardian's relation and household, or the
guardianship itself; a staff member's place on a group. The admin's calls.

A change of group or of guardianship is a policy fact: the next decision of
every process sees it (the facts-version triggers), so the old group's staff
and a removed guardian lose the child's records at once. The audit events
name the fields changed, never a name or date.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from vault.api.access import load_child, now, rules
from vault.api.body import answer, read_body
from vault.api.directory import admin_only, changing, no_content
from vault.api.models.directory import ChildChanges, ChildRectified, GuardianChanges
from vault.api.openapi import operation
from vault.api.resources import DB, KEYS
from vault.api.routes import route
from vault.api.trail import note
from vault.directory import children, places
from vault.errors import InvalidInput
from vault.policy import Phase, phase

_ADMIN_ON = {403: ("forbidden",), 404: ("not_found",)}


@operation(
    "Correct a child's name, birth date or group (the admin); a new group moves the child's "
    "visibility at once.",
    tags=["directory"],
    body=ChildChanges,
    answer=ChildRectified,
    refusals=_ADMIN_ON,
)
async def rectify_child(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, ChildChanges)
    fields = sorted(
        name
        for name in ("first_name", "last_name", "birth_date", "group_id")
        if getattr(body, name) is not None
    )
    if not fields:
        raise InvalidInput(
            "Send at least one of 'first_name', 'last_name', 'birth_date' or 'group_id'."
        )
    if body.birth_date is not None and body.birth_date > now(request).date():
        raise InvalidInput("The field 'birth_date' lies in the future.")
    await changing(request, child=True, fields=",".join(fields))
    app = request.app
    child_id = request.match_info["id"]
    profile = await children.read_profile(app[DB], app[KEYS], child_id)
    changed = dataclasses.replace(
        profile,
        **{
            name: value
            for name in ("first_name", "last_name", "birth_date")
            if (value := getattr(body, name)) is not None
        },
    )
    group = await children.rectify_child(app[DB], app[KEYS], child_id, changed, body.group_id)
    return answer(
        ChildRectified(
            id=child_id,
            first_name=changed.first_name,
            last_name=changed.last_name,
            birth_date=changed.birth_date,
            group_id=group,
        )
    )


async def _visible_to_guardians(request: web.Request) -> bool:
    child = await load_child(request)
    return phase(child, now(request), rules(request.app)) is not Phase.ARCHIVED


@operation(
    "Change a guardian's relation or household (the admin); the child keeps a contract "
    "parent while its records are visible to guardians.",
    tags=["directory"],
    body=GuardianChanges,
    answer=(204, None),
    refusals={**_ADMIN_ON, 409: ("conflict",)},
)
async def change_guardian(request: web.Request) -> web.Response:
    admin_only(request)
    body = await read_body(request, GuardianChanges)
    if body.relation is None and body.household is None:
        raise InvalidInput("Send 'relation', 'household' or both.")
    person = request.match_info["person_id"]
    await changing(request, child=True, person=person)
    visible = await _visible_to_guardians(request)
    await children.change_guardian(
        request.app[DB],
        request.match_info["id"],
        person,
        relation=body.relation,
        household=body.household,
        visible=visible,
    )
    return no_content()


@operation(
    "Remove a guardian (the admin); 409 if it would leave the child without a contract "
    "parent while its records are visible to guardians.",
    tags=["directory"],
    answer=(204, None),
    refusals={**_ADMIN_ON, 409: ("conflict",)},
)
async def remove_guardian(request: web.Request) -> web.Response:
    admin_only(request)
    person = request.match_info["person_id"]
    await changing(request, child=True, person=person)
    visible = await _visible_to_guardians(request)
    await children.remove_guardian(
        request.app[DB], request.match_info["id"], person, visible=visible, now=now(request)
    )
    return no_content()


@operation(
    "Take a staff member off a group (the admin): they stop seeing its children at once.",
    tags=["directory"],
    answer=(204, None),
    refusals=_ADMIN_ON,
)
async def remove_staff(request: web.Request) -> web.Response:
    admin_only(request)
    person = request.match_info["person_id"]
    note(request, target=request.match_info["id"], person=person)
    await places.remove_staff(request.app[DB], request.match_info["id"], person, now(request))
    return no_content()


def setup(app: web.Application) -> None:
    child = "/v1/children/{id}"
    guardian = "/v1/children/{id}/guardians/{person_id}"
    route(app, "PATCH", child, rectify_child, audit="directory.rectify_child")
    route(app, "PATCH", guardian, change_guardian, audit="directory.change_guardian")
    route(app, "DELETE", guardian, remove_guardian, audit="directory.remove_guardian")
    staff = "/v1/groups/{id}/staff/{person_id}"
    route(app, "DELETE", staff, remove_staff, audit="directory.remove_staff")
