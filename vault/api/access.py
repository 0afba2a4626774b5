"""How handlers ask the policy: the caller, the time, and one enforce step.

Handlers never look at roles. They gather facts, ask
:func:`vault.policy.decide` through :func:`check`, and the denial becomes the
matching error of :mod:`vault.errors`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from vault.api.resources import CLOCK, READER, SETTINGS
from vault.api.trail import note
from vault.directory.children import child_facts
from vault.errors import NotFound
from vault.policy import (
    Action,
    Child,
    ChildTarget,
    Decision,
    Principal,
    Rules,
    Target,
    decide,
    enforce,
)

PRINCIPAL = web.RequestKey("principal", Principal)


def now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


def rules(app: web.Application) -> Rules:
    settings = app[SETTINGS]
    return Rules(
        window=timedelta(weeks=settings.policy.window_weeks),
        totp_required_roles=frozenset(settings.auth.totp_required_roles),
    )


def ask(request: web.Request, action: Action, target: Target) -> Decision:
    """The policy's answer for the caller, without raising (for filtering lists)."""
    return decide(request[PRINCIPAL], action, target, now(request), rules(request.app))


def check(request: web.Request, action: Action, target: Target) -> Decision:
    """Ask the policy about the caller; raise the API error if denied."""
    return enforce(ask(request, action, target))


async def load_child(request: web.Request) -> Child:
    """The facts of the child named in the path; ``not_found`` if there is none.

    Only for handlers that ask the policy next: the answer for a child that
    does not exist and for one the caller is not related to is the same.
    """
    child_id = request.match_info["id"]
    note(request, children=[child_id])  # refusals about this child are on its record too
    facts = await child_facts(request.app[READER], child_id)
    if facts is None:
        raise NotFound()
    return facts


async def child_for(request: web.Request, action: Action) -> Child:
    """The child named in the path, if the policy lets the caller do ``action``."""
    facts = await load_child(request)
    check(request, action, ChildTarget(facts))
    return facts
