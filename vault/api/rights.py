"""Calls of the people's rights (API.md 1.1): destruction certificates.

Who may is the policy's (``certificate.view``: the privacy officer); the
reading is :mod:`vault.rights.certificates`.
"""

from __future__ import annotations

from aiohttp import web

from vault.api.access import child_for
from vault.api.body import answer
from vault.api.models.rights import Certificate, Certificates
from vault.api.openapi import operation
from vault.api.resources import DB
from vault.api.routes import route
from vault.policy import Action
from vault.rights.certificates import certificates_of


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
    route(app, "GET", "/v1/children/{id}/certificates", certificates, audit="rights.certificates")
