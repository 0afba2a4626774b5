"""Passwords: the rules, the stored form, and a check that takes as long for an
address nobody has (tested against the service, as an attacker would time it)."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.helpers.accounts import PASSWORD, invited, sign_in
from tests.helpers.api import Api
from vault.accounts.passwords import (
    MEMORY_KIB,
    Passwords,
    check_new_password,
    common_passwords,
)
from vault.api.models.accounts import Credentials, PasswordChange
from vault.errors import InvalidInput


def test_the_shipped_list_holds_common_long_passwords() -> None:
    listed = common_passwords()
    assert 50_000 < len(listed) < 200_000
    for common in ("1qaz2wsx3edc", "qwerty123456", "password1234", "iloveyou2024", "welkom123456"):
        assert common in listed, common
    assert all(len(p) >= 12 for p in listed)


@pytest.mark.parametrize(
    "weak", ["", "elevenchars", "QWERTY123456", "Iloveyou2024!", "1234567890123"]
)
def test_weak_new_passwords_are_refused(weak: str) -> None:
    with pytest.raises(InvalidInput):
        check_new_password(weak)


def test_a_good_password_passes_normalised() -> None:
    assert check_new_password("fiets kaas regen boom") == "fiets kaas regen boom"
    assert check_new_password("ﬁets kaas regen boom") == "fiets kaas regen boom"  # NFKC
    with pytest.raises(InvalidInput):
        check_new_password("x" * 257)


def test_a_body_with_a_password_never_shows_it() -> None:
    body = Credentials(email="a@example.org", password="fiets kaas regen boom", totp="123456")
    for shown in (repr(body), str(body), f"{body}"):
        assert "fiets" not in shown, shown
        assert "123456" not in shown, shown
        assert "a@example.org" in shown
    change = PasswordChange(current="oud wachtwoord hier", new="nieuw wachtwoord hier")
    assert "wachtwoord" not in repr(change)


async def test_hashes_check_and_tell_old_parameters() -> None:
    passwords = Passwords(workers=1)
    try:
        stored = await passwords.hash(PASSWORD)
        assert f"m={MEMORY_KIB},t=2,p=1" in stored
        assert await passwords.verify(stored, PASSWORD)
        assert not await passwords.verify(stored, PASSWORD + "!")
        assert not await passwords.verify(None, PASSWORD)
        assert not await passwords.verify("not a hash", PASSWORD)
        assert not passwords.needs_rehash(stored)
        older = stored.replace(f"m={MEMORY_KIB},t=2", "m=8192,t=3")
        assert passwords.needs_rehash(older)
    finally:
        passwords.close()


async def test_an_unknown_address_takes_as_long_as_a_wrong_password(api: Api) -> None:
    await invited(api, "guardian", "timed@example.org")

    async def median(email: str) -> float:
        # CPU time of this process (every thread, the hashing pool's too):
        # what the hash costs, untouched by waits for the disk or a busy machine.
        spent = []
        for _ in range(5):
            started = time.process_time()
            status, _ = await sign_in(api, email, "not the right password")
            spent.append(time.process_time() - started)
            assert status == 401
        return statistics.median(spent)

    known, unknown = await median("timed@example.org"), await median("nobody@example.org")
    # Without the dummy hash the unknown address would cost a database lookup,
    # a tenth of a check or less.
    assert 0.6 < unknown / known < 1.6, (known, unknown)
