"""The policy on signing in, as tables written from the issue: who may sign in
how, the one-time-code gate for required roles, switching codes off."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vault.policy import (
    ROLES,
    Action,
    Credential,
    DirectoryTarget,
    Principal,
    Rules,
    SignIn,
    decide,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
#: Single sign-on is for the organisation's employees (written out, not imported).
SSO = {
    "guardian": False,
    "staff": True,
    "administration": True,
    "location_manager": True,
    "privacy_officer": True,
    "inspector": False,
    "admin": True,
}
REQUIRED = Rules(totp_required_roles=frozenset({"staff", "privacy_officer"}))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["password", "invitation", "oidc"])
def test_who_signs_in_how(role: str, method: str) -> None:
    decision = decide(Principal("p", role), Action.SIGN_IN, SignIn(method), NOW)
    expected = SSO[role] if method == "oidc" else True
    assert decision.allowed is expected, (role, method, decision)
    if not expected:
        assert decision.code == "forbidden"
    blocked = decide(Principal("p", role, blocked=True), Action.SIGN_IN, SignIn(method), NOW)
    assert (blocked.allowed, blocked.code) == (False, "blocked")


@pytest.mark.parametrize(
    ("role", "credential", "allowed"),
    [
        ("staff", Credential("session", "password", second_factor=False), False),
        ("staff", Credential("session", "invitation", second_factor=False), False),
        ("staff", Credential("session", "password", False, enrolment_call=True), True),
        ("staff", Credential("session", "password", second_factor=True), True),
        ("staff", Credential("session", "oidc", second_factor=True), True),
        ("staff", Credential("api"), True),
        ("privacy_officer", Credential("session", "password"), False),
        ("guardian", Credential("session", "password"), True),
        ("location_manager", Credential("session", "password"), True),
    ],
)
def test_required_codes_gate_password_sessions(
    role: str, credential: Credential, allowed: bool
) -> None:
    decision = decide(Principal("p", role), Action.USE_API, credential, NOW, REQUIRED)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.code == "totp_required"
    # Without the setting nothing is gated.
    assert decide(Principal("p", role), Action.USE_API, credential, NOW).allowed


@pytest.mark.parametrize("role", ROLES)
def test_codes_are_switched_off_only_where_they_are_optional(role: str) -> None:
    decision = decide(Principal("p", role), Action.DISABLE_TOTP, DirectoryTarget(), NOW, REQUIRED)
    assert decision.allowed is (role not in {"staff", "privacy_officer"})
    assert decide(Principal("p", role), Action.MANAGE_OWN_ACCOUNT, DirectoryTarget(), NOW).allowed
