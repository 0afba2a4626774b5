"""Reports (API.md 1.1 "Reports and requests"): a child's, and a person's own."""

from __future__ import annotations

from datetime import date
from typing import Literal

from vault.api.models.consents import ConsentEvent, ConsentsNow
from vault.api.models.types import AccessReason, Answer, Id, Kind, Query, Role, Timestamp


class ReportQuery(Query):
    #: ``html``: the same as a self-contained printable page.
    format: Literal["json", "html"] = "json"


class ChildReportQuery(ReportQuery):
    #: The privacy officer's reason (required of them; shown in the access log).
    reason: AccessReason | None = None


class ReportChild(Answer):
    id: Id
    first_name: str
    last_name: str
    birth_date: date


class ReportGuardian(Answer):
    id: Id
    #: None once the person's own data is destroyed.
    name: str | None
    relation: Literal["contract_parent", "co_parent"]
    household: Literal["shared", "separate"]


class ReportCategory(Answer):
    """What is held of one kind, why, who else handles it, and until when."""

    count: int
    purpose: str
    recipients: list[str]
    visible_until: date | None
    archived_from: date | None
    destroy_at: date | None
    statutory: bool


class ReportConsents(Answer):
    current: ConsentsNow
    history: list[ConsentEvent]


class AccessSummary(Answer):
    """Events in the audit log (refused attempts too), since the first, by role."""

    events: int
    since: Timestamp | None
    by_role: dict[str, int]


class ReportProcessor(Answer):
    name: str
    purpose: str
    location: str


class ChildReport(Answer):
    child: ReportChild
    generated_at: Timestamp
    guardians: list[ReportGuardian]
    categories: dict[Kind, ReportCategory]
    consents: ReportConsents
    access: AccessSummary
    processors: list[ReportProcessor]


class ReportPerson(Answer):
    id: Id
    name: str | None
    email: str | None
    role: Role


class ReportToken(Answer):
    id: Id
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp | None


class PersonReport(Answer):
    person: ReportPerson
    children: list[Id]
    tokens: list[ReportToken]
    access: AccessSummary
