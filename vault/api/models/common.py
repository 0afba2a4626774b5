"""Answers shared by several areas, and the error body."""

from __future__ import annotations

from datetime import datetime

from vault.api.models.types import Answer, Id


class Created(Answer):
    """A new thing's id."""

    id: Id


class Link(Answer):
    """A signed link; it works without a token until ``expires_at``."""

    url: str
    expires_at: datetime


class ErrorDetail(Answer):
    code: str
    message: str


class ErrorBody(Answer):
    """Every refusal: the status plus this body (API.md "Conventions")."""

    error: ErrorDetail
