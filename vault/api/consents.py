"""Consent endpoints (API.md "Consent"): guardians change, the related read."""

from __future__ import annotations

import msgspec
from aiohttp import web

from vault.api.access import PRINCIPAL, child_for, now
from vault.api.body import answer, read_body
from vault.api.models.consents import (
    ConsentChange,
    ConsentEvent,
    Consents,
    ConsentsNow,
    ConsentState,
)
from vault.api.models.types import ConsentType
from vault.api.openapi import operation
from vault.api.resources import DB
from vault.api.routes import route
from vault.api.trail import note, record_now
from vault.directory import consent
from vault.errors import InvalidInput
from vault.policy import CONSENT_TYPES, Action


@operation(
    "Grant or withdraw a consent (a guardian of the child). Withdrawal is possible at any "
    "time and is not retroactive.",
    tags=["consent"],
    body=ConsentChange,
    answer=ConsentState,
    path={"type": ConsentType},
    refusals={403: ("forbidden", "outside_window"), 404: ("not_found",)},
)
async def change(request: web.Request) -> web.Response:
    kind = request.match_info["type"]
    if kind not in CONSENT_TYPES:
        raise InvalidInput(f"Unknown consent type; use one of: {', '.join(CONSENT_TYPES)}.")
    body = await read_body(request, ConsentChange)
    action = Action.GRANT_CONSENT if body.granted else Action.WITHDRAW_CONSENT
    facts = await child_for(request, action)
    moment = now(request)
    note(request, consent=kind, granted=body.granted)
    await record_now(request)
    recorded = await consent.record(
        request.app[DB], facts.id, kind, body.granted, request[PRINCIPAL].id, moment
    )
    return answer(msgspec.convert(recorded, ConsentState, from_attributes=True))


@operation(
    "The consents in force and their whole history (guardians, staff, privacy officer).",
    tags=["consent"],
    answer=Consents,
    refusals={403: ("forbidden", "outside_window"), 404: ("not_found",)},
)
async def read(request: web.Request) -> web.Response:
    facts = await child_for(request, Action.VIEW_CONSENTS)
    changes = await consent.history(request.app[DB], facts.id)
    return answer(
        Consents(
            current=ConsentsNow(**consent.current(changes)),
            history=[msgspec.convert(c, ConsentEvent, from_attributes=True) for c in changes],
        )
    )


def setup(app: web.Application) -> None:
    route(app, "PUT", "/v1/children/{id}/consents/{type}", change, audit="consents.change")
    route(app, "GET", "/v1/children/{id}/consents", read, audit="consents.read")
