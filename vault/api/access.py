"""How handlers ask the policy: the caller, the time, and one enforce step.

Handlers never look at roles. They gather facts, ask
:func:`vault.policy.decide` through :func:`check`, and the denial becomes the
matching error of :mod:`vault.errors`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from vault.api.resources import CLOCK, DB, KEYRING, KEYS, READER, SETTINGS
from vault.api.trail import note
from vault.directory.children import child_facts
from vault.directory.sealing import Sealer
from vault.errors import InvalidInput, NotFound
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
from vault.rights.reasons import Reasons

PRINCIPAL = web.RequestKey("principal", Principal)


def now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


def rules(app: web.Application) -> Rules:
    settings = app[SETTINGS]
    return Rules(
        window=timedelta(weeks=settings.policy.window_weeks),
        totp_required_roles=frozenset(settings.auth.totp_required_roles),
    )


def ask(request: web.Request, action: Action, target: Target, *, reason: bool = False) -> Decision:
    """The policy's answer for the caller, without raising (for filtering lists).
    ``reason``: the caller stated one (the privacy officer's links and exports)."""
    principal = request[PRINCIPAL]
    return decide(principal, action, target, now(request), rules(request.app), reason=reason)


def check(
    request: web.Request, action: Action, target: Target, *, reason: bool = False
) -> Decision:
    """Ask the policy about the caller; raise the API error if denied."""
    return enforce(ask(request, action, target, reason=reason))


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


def stated_reason(request: web.Request, text: str | None) -> Reasons | None:
    """The privacy officer's reason for this call, ready to be kept for the
    children it reaches (vault/rights/reasons.py); None when none was given."""
    if text is None:
        return None
    if len(text) < 3:
        raise InvalidInput("A 'reason' is 3 to 500 characters; say why this access is needed.")
    app = request.app
    return Reasons(Sealer(app[DB], app[KEYS], app[KEYRING]), text, now(request))
