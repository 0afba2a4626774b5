"""Operations (API.md "Operations")."""

from __future__ import annotations

from typing import Literal

from vault.api.models.types import Answer


class Health(Answer):
    status: Literal["ok"]


class Readiness(Answer):
    status: Literal["ready"]
    checks: dict[str, Literal["ok", "down"]]
