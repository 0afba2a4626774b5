"""Consent (API.md "Consent")."""

from __future__ import annotations

from datetime import datetime

from vault.api.models.types import Answer, Body, ConsentType, Id


class ConsentChange(Body):
    granted: bool


class ConsentState(Answer):
    type: ConsentType
    granted: bool
    changed_at: datetime


class ConsentsNow(Answer):
    """Each type in force now; never given means false."""

    photo: bool
    diary: bool
    external_publication: bool
    school_handover: bool


class ConsentEvent(Answer):
    type: ConsentType
    granted: bool
    changed_at: datetime
    by: Id


class Consents(Answer):
    current: ConsentsNow
    history: list[ConsentEvent]
