"""Calls of the people's rights (API.md 1.1): restriction of processing and
destruction certificates.

Who may is the policy's (``restriction.manage``, ``certificate.view``: the
privacy officer); what a restriction stops is the policy's too (every
decision sees ``Child.restricted``). The work is :mod:`vault.rights`'.
"""

from __future__ import annotations

from aiohttp import web

from vault.api.access import PRINCIPAL, child_for, now
from vault.api.body import answer, read_body
from vault.api.models.common import Created
from vault.api.models.rights import Certificate, Certificates, RestrictionRequest
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS
from vault.api.routes import route
from vault.api.trail import note
from vault.directory.sealing import Sealer
from vault.policy import Action
from vault.rights import restriction
from vault.rights.certificates import certificates_of

_ON_CHILD = {403: ("forbidden",), 404: ("not_found",)}


@operation(
    "Restrict the processing of a child's records (GDPR art. 18): nothing new is added and "
    "nothing handed out but to the privacy officer until it is lifted; retention still runs.",
    tags=["retention"],
    body=RestrictionRequest,
    answer=(201, Created),
    refusals={**_ON_CHILD, 409: ("conflict",)},
)
async def restrict(request: web.Request) -> web.Response:
    child = await child_for(request, Action.MANAGE_RESTRICTION)
    body = await read_body(request, RestrictionRequest)
    app = request.app
    sealer = Sealer(app[DB], app[KEYS], app[KEYRING])
    restriction_id = await restriction.place(
        sealer, child.id, body.reason, request[PRINCIPAL].id, now(request)
    )
    note(request, restriction=restriction_id)
    return answer(Created(id=restriction_id), status=201)


@operation(
    "Lift the restriction of a child's processing.",
    tags=["retention"],
    answer=(204, None),
    refusals=_ON_CHILD,
)
async def lift_restriction(request: web.Request) -> web.Response:
    child = await child_for(request, Action.MANAGE_RESTRICTION)
    lifted = await restriction.lift(request.app[DB], child.id, request[PRINCIPAL].id, now(request))
    note(request, restriction=lifted)
    return web.Response(status=204)


@operation(
    "The destruction certificates of a child's records (the privacy officer), "
    "also after the records are gone.",
    tags=["retention"],
    answer=Certificates,
    refusals={403: ("forbidden",), 404: ("not_found",)},
)
async def certificates(request: web.Request) -> web.Response:
    child = await child_for(request, Action.VIEW_CERTIFICATES)
    found = await certificates_of(request.app[DB], child.id)
    return answer(
        Certificates(
            certificates=[
                Certificate(
                    category=c.category,  # type: ignore[arg-type]  # stored kinds are KINDS
                    destroyed_at=c.destroyed_at,
                    items=c.items,
                    epochs=list(c.epochs),
                    run_id=c.run_id,
                )
                for c in found
            ]
        )
    )


def setup(app: web.Application) -> None:
    path = "/v1/children/{id}/restriction"
    route(app, "POST", path, restrict, audit="rights.restrict")
    route(app, "DELETE", path, lift_restriction, audit="rights.lift_restriction")
    route(app, "GET", "/v1/children/{id}/certificates", certificates, audit="rights.certificates")
