"""``GET /v1/me``: who the caller is and the children they may see.

The web app starts here: a parent's children, a member of staff's groups, a
mentor's and a location manager's children. Candidates come from the
caller's own memberships (guardianships, groups, locations, mentorships);
each is kept only if the policy lets the caller see its directory facts now,
so this list never shows more than ``GET /v1/children/{id}`` would.
An addition beside API.md ("add what you need beside them").
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import or_, select

from vault.api.access import PRINCIPAL, ask
from vault.api.body import answer
from vault.api.models.directory import ChildPlacement, Me, MyChild
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS, READER
from vault.api.routes import route
from vault.api.trail import note
from vault.db.schema import care_groups, children
from vault.directory import people
from vault.directory.children import child_facts, read_profile
from vault.directory.sealing import Sealer
from vault.policy import Action, ChildTarget


async def _candidates(request: web.Request) -> list[str]:
    principal = request[PRINCIPAL]
    ids = set(principal.guardian_of) | set(principal.mentor_of)
    if principal.groups or principal.locations:
        query = (
            select(children.c.id)
            .join(care_groups, care_groups.c.id == children.c.group_id)
            .where(
                or_(
                    children.c.group_id.in_(sorted(principal.groups)),
                    care_groups.c.location_id.in_(sorted(principal.locations)),
                )
            )
        )
        async with request.app[DB].connect() as conn:
            ids.update(str(row) for row in (await conn.scalars(query)).all())
    return sorted(ids)


@operation(
    "Who the token belongs to, and the children they may see now (the web app's start).",
    tags=["accounts"],
    answer=Me,
)
async def me(request: web.Request) -> web.Response:
    app = request.app
    principal = request[PRINCIPAL]
    sealer = Sealer(app[DB], app[KEYS], app[KEYRING])
    person = await people.read_person(app[DB], sealer, principal.id)
    group_names: dict[str, str] = {}
    found: list[MyChild] = []
    for child_id in await _candidates(request):
        facts = await child_facts(app[READER], child_id)
        if facts is None or not ask(request, Action.VIEW_CHILD, ChildTarget(facts)).allowed:
            continue
        profile = await read_profile(app[DB], app[KEYS], child_id)
        if facts.group_id not in group_names:
            async with app[DB].connect() as conn:
                sealed = await conn.scalar(
                    select(care_groups.c.sealed_name).where(care_groups.c.id == facts.group_id)
                )
            group_names[facts.group_id] = (
                await sealer.open_place("care_groups", facts.group_id, sealed) if sealed else ""
            )
        link = principal.guardian_of.get(child_id)
        found.append(
            MyChild(
                id=child_id,
                first_name=profile.first_name,
                last_name=profile.last_name,
                birth_date=profile.birth_date,
                group_id=facts.group_id,
                group_name=group_names[facts.group_id],
                placement=ChildPlacement(
                    start_date=facts.placement_start, end_date=facts.placement_end
                ),
                relation=link.relation if link else None,  # type: ignore[arg-type]
            )
        )
    note(request, children=[child.id for child in found])
    found.sort(key=lambda child: (child.group_name, child.first_name, child.id))
    return answer(Me(id=principal.id, name=person.name, role=person.role, children=found))  # type: ignore[arg-type]


def setup(app: web.Application) -> None:
    route(app, "GET", "/v1/me", me, audit="accounts.me")
