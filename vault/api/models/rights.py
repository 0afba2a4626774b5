"""The rights of the people concerned (API.md 1.1 "Reasons, restriction,
publication, certificates")."""

from __future__ import annotations

import typing
from typing import Literal

from vault.api.models.types import Answer, Body, Id, Kind, Query, Reason, Timestamp
from vault.rights import register


class Certificate(Answer):
    """One category destroyed by one run (or erasure): how many records, under
    which epochs' keys."""

    category: Kind
    destroyed_at: Timestamp
    items: int
    epochs: list[str]
    run_id: str


class Certificates(Answer):
    certificates: list[Certificate]


class RestrictionRequest(Body):
    reason: Reason


RequestType = Literal[
    "access", "rectification", "erasure", "restriction", "objection", "portability"
]
RequestStatus = Literal["open", "answered"]


class NewRequest(Body):
    """A request of a person concerned; ``child_id`` when it is about a child."""

    type: RequestType
    child_id: Id | None = None
    note: Reason | None = None


class FiledRequest(Answer):
    id: Id
    type: RequestType
    status: Literal["open"]
    received_at: Timestamp
    due_at: Timestamp


class RegisterEntry(Answer):
    id: Id
    type: RequestType
    child_id: Id | None
    status: RequestStatus
    received_at: Timestamp
    due_at: Timestamp
    overdue: bool
    answered_at: Timestamp | None


class Register(Answer):
    requests: list[RegisterEntry]


class RegisterQuery(Query):
    status: RequestStatus | None = None


Outcome = Literal["granted", "partly", "refused"]


class RequestAnswer(Body):
    outcome: Outcome
    note: Reason


for _literal, _source in ((RequestType, register.TYPES), (Outcome, register.OUTCOMES)):
    if typing.get_args(_literal) != _source:  # pragma: no cover
        raise TypeError(f"{_literal} is out of step with vault/rights/register.py")
