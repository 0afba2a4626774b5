"""Acting in the demo as the API's callers act: bodies read, policy asked, steps on the record.

:class:`Acting` holds what one filling needs (the vault's services, the ids
made so far) and the three things every step does: read its body as the API
reads it (:func:`body`: the text gate, the model, the free-text pass and its
BSN scan), ask :func:`vault.policy.decide` for the person acting
(:meth:`Acting.allow`), and put the step on the audit record under the
API's action name (:meth:`Acting.record`), attributed to that person with
the agent ``kluis demo``, or to the operator for the directory's steps, as
every command's.

May touch: the audit log (events), the database (reads of facts).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import msgspec

from vault.api.body import decode
from vault.audit import CURRENT, Actor, event
from vault.db.reads import Reader
from vault.directory.children import child_facts
from vault.directory.people import load_principal
from vault.directory.sealing import Sealer
from vault.items.ingest import Context
from vault.policy import Action, Child, Principal, Rules, Target, decide, enforce
from vault.retention.job import Retention
from vault.wiring import Vault, utcnow

AGENT = "kluis demo"
OPERATOR = Actor(role="operator", agent=AGENT)
M = TypeVar("M", bound=msgspec.Struct)


def body(model: type[M], **fields: Any) -> M:
    """``fields`` read as the API reads a request body into ``model``."""
    return decode(json.dumps(fields, default=str).encode("utf-8"), model)


def taken(today: date, days_ago: int, n: int) -> datetime:
    """When the sample's n-th file was made: mid-morning of its day, minutes apart."""
    day = today - timedelta(days=days_ago)
    return datetime.combine(day, time(9, 30), UTC) + timedelta(minutes=7 * n)


def app_url(vault: Vault) -> str:
    """Where people sign in: ``links.public_url``, else where ``kluis serve`` listens."""
    settings = vault.settings
    base = settings.links.public_url.rstrip("/")
    if not base:
        host = settings.server.host
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).is_unspecified:  # listening everywhere
                host = "127.0.0.1"
        base = f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"
    return f"{base}/app/"


class Acting:
    """One filling: the services, the ids made so far (by the sample's keys)."""

    def __init__(self, vault: Vault) -> None:
        self.vault, self.engine = vault, vault.engine
        self.reader = Reader(vault.engine)
        self.sealer = Sealer(vault.engine, vault.keys, vault.provider)
        settings = vault.settings
        self.rules = Rules(
            window=timedelta(weeks=settings.policy.window_weeks),
            totp_required_roles=frozenset(settings.auth.totp_required_roles),
        )
        self.ctx = Context(vault.engine, vault.blobs, vault.keys, settings)
        self.retention = Retention(vault.engine, vault.blobs, vault.keys, vault.provider, settings)
        self.ids: dict[str, str] = {}
        self.today = utcnow().date()
        self.app_url = app_url(vault)

    def close(self) -> None:
        self.reader.dispose()
        self.as_operator()

    def as_operator(self) -> None:
        CURRENT.set(OPERATOR)

    async def as_person(self, key: str) -> Principal:
        """Act as the sample's person ``key`` from now on (the policy's view of them)."""
        principal = await load_principal(self.reader, self.ids[key])
        CURRENT.set(Actor(person=principal.id, role=principal.role, agent=AGENT))
        return principal

    def allow(self, principal: Principal, action: Action, target: Target) -> None:
        """The policy's answer for ``principal``; its refusal raised as the API would."""
        enforce(decide(principal, action, target, utcnow(), self.rules))

    async def child(self, key: str) -> Child:
        facts = await child_facts(self.reader, self.ids[key])
        assert facts is not None, "a child the demo made is gone"
        return facts

    async def record(self, action: str, **detail: Any) -> None:
        """Put a step on the audit record, as the acting person (or the operator)."""
        await self.vault.audit.record(event(action, **detail))
