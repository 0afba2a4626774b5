"""Export endpoints (API.md "Export"): a guardian's archive of a child's records.

``POST /v1/children/{id}/exports`` asks the policy (a guardian, while the
records are visible to guardians; the privacy officer, recorded), picks every
record of the asked kinds that the caller may read, plans the archive
(:mod:`vault.share.export`) and answers its link and exact size. The link
(``/x/<token>``) is checked like every link: signature, expiry, then the
policy for the child and for every record in it, as things are at that
moment. Since the archive must be the same bytes at every request (a broken
download resumes with Range), a record that was destroyed or is no longer
visible to the caller since the export was made stops the link; asking for
a new export gives one without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from vault.api.access import PRINCIPAL, ask, child_for, enforce, now, rules
from vault.api.body import answer, read_body
from vault.api.links import link_url, signer, verified
from vault.api.models.exports import ExportLink, ExportRequest
from vault.api.openapi import operation
from vault.api.resources import DB, KEYS, READER, SETTINGS, STORE
from vault.api.trail import attribute, caller, note, record_now
from vault.db.schema import exports
from vault.directory import consent
from vault.directory.children import PROFILE, child_facts_of, read_profile
from vault.directory.people import principal_of
from vault.errors import Destroyed, NotFound
from vault.items import service
from vault.items.service import ChildCache, LoadedItem, read_item
from vault.keys.service import item_key_rows
from vault.policy import KINDS, Action, Child, ChildTarget, ItemTarget, decide
from vault.share import export
from vault.share.delivery import serve_ranged
from vault.share.links import Claims
from vault.tokens import new_id

_PAGE = 500


def _label(export_id: str) -> str:
    return f"export:{export_id}"


@operation(
    "Make an archive of the child's records for download (a guardian, while the records "
    "are visible): index.html, diary.json and the originals; the link lives up to 24 hours.",
    tags=["export"],
    body=ExportRequest,
    answer=(201, ExportLink),
    refusals={403: ("forbidden", "outside_window"), 404: ("not_found",), 410: ("destroyed",)},
)
async def create_export(request: web.Request) -> web.Response:
    child = await child_for(request, Action.EXPORT)
    body = await read_body(request, ExportRequest)
    kinds: list[str] = list(KINDS) if body.kinds is None else list(body.kinds)
    app = request.app
    cache = ChildCache(app[READER])
    chosen: list[str] = []
    before = None
    while True:
        batch = [r async for r in service.page_for_child(app[DB], child.id, None, before, _PAGE)]
        for record in batch:
            if record.kind not in kinds or record.destroyed_at is not None:
                continue
            target = ItemTarget(record.policy_item(), await cache.for_item(record))
            if ask(request, Action.READ_ITEM, target).allowed:  # only what this caller may see
                chosen.append(record.id)
        if len(batch) < _PAGE:
            break
        before = (batch[-1].created_at, batch[-1].id)
    sources = []
    for item_id, loaded, key_rows in await app[READER](lambda conn: _items(conn, chosen)):
        if loaded is not None:
            key = await app[KEYS].unwrap_item_key(item_id, key_rows)
            sources.append(export.Source(loaded, key))
    moment = now(request)
    profile = await read_profile(app[DB], app[KEYS], child.id)
    plan = await export.plan(
        app[STORE],
        sources,
        child_id=child.id,
        first_name=profile.first_name,
        consents=consent.current(await consent.history(app[DB], child.id)),
        now=moment,
    )
    export_id = new_id()
    sealed = await app[KEYS].seal_value(child.id, PROFILE, _label(export_id), plan.to_json())
    ttl = app[SETTINGS].links.export_max_ttl_hours * 3600
    expires = moment + timedelta(seconds=ttl)
    async with app[DB].begin() as conn:
        await conn.execute(
            insert(exports).values(
                id=export_id,
                child_id=child.id,
                person_id=request[PRINCIPAL].id,
                created_at=moment,
                expires_at=expires,
                size=plan.size,
                manifest=sealed,
            )
        )
    claims = Claims(
        purpose="export",
        subject=export_id,
        principal=request[PRINCIPAL].id,
        issued_at=int(moment.timestamp()),
        expires_at=int(moment.timestamp()) + ttl,
        disposition="attachment",
    )
    token = (await signer(app)).sign(claims)
    note(request, export=export_id, items=len(plan.items), size=plan.size, kinds=sorted(kinds))
    url = link_url(request, "export", token)
    return answer(ExportLink(url=url, expires_at=claims.expires, size=plan.size), status=201)


def _items(conn: Connection, ids: list[str]) -> list[tuple[str, LoadedItem | None, Any]]:
    """Each record with its key wrappings, in one batch."""
    out = []
    for item_id in ids:
        loaded = read_item(conn, item_id)
        out.append((item_id, loaded, item_key_rows(conn, item_id) if loaded else ()))
    return out


def _recheck(conn: Connection, principal_id: str, child_id: str, ids: list[str]) -> Any:
    """The caller, the child and every record of the export as they are now."""
    records = _items(conn, ids)
    facts: dict[str, Child | None] = {}
    for _, loaded, _ in records:
        for owner in loaded.record.children if loaded else ():
            if owner not in facts:
                facts[owner] = child_facts_of(conn, owner)
    return principal_of(conn, principal_id), child_facts_of(conn, child_id), records, facts


@operation(
    "The export's ZIP (GET or HEAD), exactly 'size' bytes, checked against the policy for the "
    "child and every record in it at this moment; Range resumes a broken download.",
    tags=["export"],
    auth=False,
    link=True,
    content={"application/zip": {}},
)
async def open_export(request: web.Request) -> web.StreamResponse:
    app = request.app
    moment = now(request)
    claims = await verified(request, "export")
    note(request, export=claims.subject, method=request.method)
    async with app[DB].connect() as conn:
        row = (await conn.execute(select(exports).where(exports.c.id == claims.subject))).first()
    if row is None or row.person_id != claims.principal:
        raise NotFound()
    note(request, children=[row.child_id])
    try:
        raw = await app[KEYS].open_value(row.child_id, PROFILE, _label(row.id), row.manifest)
    except Destroyed:
        raise Destroyed("This child's records were destroyed; the export went with them.") from None
    plan = export.Plan.from_json(raw)
    principal, child, records, facts = await app[READER](
        lambda conn: _recheck(conn, claims.principal, row.child_id, plan.items)
    )
    if principal is None or child is None:
        raise NotFound()
    attribute(
        request, dataclasses.replace(caller(request), person=principal.id, role=principal.role)
    )
    the_rules = rules(app)
    enforce(decide(principal, Action.EXPORT, ChildTarget(child), moment, the_rules))
    sources: dict[str, export.Source] = {}
    for item_id, loaded, key_rows in records:
        if loaded is None:
            raise NotFound("A record in this export is gone; ask for a new export.")
        children = {c: f for c in loaded.record.children if (f := facts.get(c)) is not None}
        decision = decide(
            principal,
            Action.READ_ITEM,
            ItemTarget(loaded.record.policy_item(), children),
            moment,
            the_rules,
        )
        if not decision.allowed:
            enforce(
                dataclasses.replace(
                    decision,
                    reason=f"{decision.reason} This export holds it; ask for a new export.",
                )
            )
        key = await app[KEYS].unwrap_item_key(item_id, key_rows)
        sources[item_id] = export.Source(loaded, key)
    size = plan.size
    etag = '"' + hashlib.sha256(f"export/{row.id}/{size}".encode()).hexdigest()[:32] + '"'
    remaining = max(0, int((claims.expires - moment).total_seconds()))
    name = f"kluis-export-{row.created_at:%Y-%m-%d}.zip"
    headers = {
        "Content-Type": "application/zip",
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={remaining}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
        "Content-Disposition": f'attachment; filename="{name}"',
    }

    async def on_the_record(status: int, start: int, end: int) -> None:
        note(request, status=status, offset=start, bytes=end - start, size=size)
        await record_now(request)

    def body(start: int, end: int) -> AsyncGenerator[bytes, None]:
        return export.body(plan, app[STORE], sources, start, end)

    return await serve_ranged(request, size, headers, body, before_send=on_the_record)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/children/{id}/exports", create_export)
    app.router.add_get("/x/{token}", open_export)
