"""Reports (API.md 1.1): ``GET /v1/children/{id}/report`` and ``GET /v1/me/report``.

Parse, ask the policy (``report.view`` on the child, with the privacy
officer's reason; ``report.view_own``), gather (:mod:`vault.rights.reports`),
answer as JSON or, with ``?format=html``, as the printable page of
:mod:`vault.rights.report_page` under its own Content-Security-Policy.
Every view is an audit event (``reports.child``, ``reports.me``); the
privacy officer's reason is kept sealed for the child and named by id.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from vault.api.access import PRINCIPAL, check, load_child, now, stated_reason
from vault.api.body import answer, read_query
from vault.api.models import reports as models
from vault.api.models.consents import ConsentEvent, ConsentsNow
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS, SETTINGS
from vault.api.retention import retention
from vault.api.routes import route
from vault.api.trail import note
from vault.audit.queries import Summary
from vault.directory.children import read_profile
from vault.directory.sealing import Sealer
from vault.policy import Action, ChildTarget, DirectoryTarget, report_view
from vault.rights import report_page
from vault.rights.reports import ChildReport, PersonReport, child_report, person_report

_HTML = {"text/html": {"schema": {"type": "string"}}}


def _page(text: str) -> web.Response:
    response = web.Response(text=text, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = report_page.CSP
    return response


@operation(
    "What the vault holds on a child (GDPR art. 15): categories with counts, purposes, "
    "recipients and retention dates, consents and their history, who looked, the "
    "processors. Its guardians (as far as their view reaches) and the privacy officer "
    "(with a 'reason'); ?format=html: a printable page.",
    tags=["rights"],
    answer=models.ChildReport,
    query=models.ChildReportQuery,
    content=_HTML,
    refusals={403: ("forbidden",), 404: ("not_found",), 410: ("destroyed",)},
)
async def child(request: web.Request) -> web.Response:
    facts = await load_child(request)
    query = read_query(request, models.ChildReportQuery)
    reason = stated_reason(request, query.reason)
    decision = check(request, Action.VIEW_REPORT, ChildTarget(facts), reason=reason is not None)
    if reason is not None and decision.record:
        note(request, reason_id=await reason.keep([facts.id]))
    note(request, format=query.format)
    app = request.app
    sealer = Sealer(app[DB], app[KEYS], app[KEYRING])
    report = await child_report(
        app[DB],
        sealer,
        child=facts,
        profile=await read_profile(app[DB], app[KEYS], facts.id),
        principal=request[PRINCIPAL],
        view=report_view(request[PRINCIPAL], facts),
        plan=await retention(app).schedule_of(facts),
        processors=app[SETTINGS].processors,
        now=now(request),
    )
    if query.format == "html":
        return _page(report_page.child_page(report))
    return answer(_child_answer(report))


def _summary(summary: Summary) -> models.AccessSummary:
    return models.AccessSummary(
        events=summary.events, since=summary.since, by_role=dict(sorted(summary.by_role.items()))
    )


def _child_answer(report: ChildReport) -> models.ChildReport:
    profile = report.profile
    return models.ChildReport(
        child=models.ReportChild(
            id=report.child_id,
            first_name=profile.first_name,
            last_name=profile.last_name,
            birth_date=profile.birth_date,
        ),
        generated_at=report.generated_at,
        guardians=[
            models.ReportGuardian(
                id=g.id,
                name=g.name,
                relation=g.relation,  # type: ignore[arg-type]  # stored values are the choices
                household=g.household,  # type: ignore[arg-type]
            )
            for g in report.guardians
        ],
        categories={
            kind: models.ReportCategory(  # type: ignore[misc]  # kinds are KINDS
                count=c.count,
                purpose=c.purpose.en,
                recipients=c.recipients,
                visible_until=c.visible_until,
                archived_from=c.archived_from,
                destroy_at=c.destroy_at,
                statutory=c.statutory,
            )
            for kind, c in report.categories.items()
        },
        consents=models.ReportConsents(
            current=ConsentsNow(**report.consents),
            history=[
                msgspec.convert(c, ConsentEvent, from_attributes=True) for c in report.history
            ],
        ),
        access=_summary(report.access),
        processors=[
            models.ReportProcessor(name=p.name, purpose=p.purpose, location=p.location)
            for p in report.processors
        ],
    )


@operation(
    "What the vault holds on the caller: their own data, the children they are linked to, "
    "their working tokens and the events of their own calls; ?format=html: a printable page.",
    tags=["rights"],
    answer=models.PersonReport,
    query=models.ReportQuery,
    content=_HTML,
)
async def me(request: web.Request) -> web.Response:
    query = read_query(request, models.ReportQuery)
    check(request, Action.VIEW_OWN_REPORT, DirectoryTarget())
    note(request, format=query.format)
    app = request.app
    sealer = Sealer(app[DB], app[KEYS], app[KEYRING])
    report = await person_report(app[DB], sealer, request[PRINCIPAL], now(request))
    if query.format == "html":
        return _page(report_page.person_page(report))
    return answer(_person_answer(report))


def _person_answer(report: PersonReport) -> models.PersonReport:
    return models.PersonReport(
        person=models.ReportPerson(
            id=report.id,
            name=report.name,
            email=report.email,
            role=report.role,  # type: ignore[arg-type]  # stored roles are ROLES
        ),
        children=report.children,
        tokens=[
            models.ReportToken(
                id=t.id,
                created_at=t.created_at,
                last_used_at=t.last_used_at,
                expires_at=t.expires_at,
            )
            for t in report.tokens
        ],
        access=_summary(report.access),
    )


def setup(app: web.Application) -> None:
    route(app, "GET", "/v1/children/{id}/report", child, audit="reports.child")
    route(app, "GET", "/v1/me/report", me, audit="reports.me")
