"""The rights of the people concerned (API.md 1.1 "Reasons, restriction,
publication, certificates")."""

from __future__ import annotations

from vault.api.models.types import Answer, Body, Kind, Reason, Timestamp


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
