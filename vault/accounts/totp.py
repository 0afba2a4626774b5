"""Time-based one-time codes (RFC 6238) and how their secrets are kept.

Codes are six digits over 30-second steps with HMAC-SHA1, what every
authenticator app reads from an ``otpauth://`` URI. A code of the current
step or one step either side is accepted (RFC 6238, 5.2: one step of drift
for clocks and typing), two steps off is refused. A step that was used once
is never accepted again for that person (the same section: a code is used
once), so a code seen over a shoulder is worth nothing.

The secret (160 random bits, RFC 4226's recommended length) is sealed under
the key provider's ``totp`` master key with the person's id in the
associated data, so a sealed secret moved to another person's row does not
open. Only this module knows that layout.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

from vault.crypto._primitives import encode_parts
from vault.keys.provider import TOTP_KEY, KeyProvider

DIGITS = 6
STEP_SECONDS = 30
#: Steps of drift accepted either side of the current one.
DRIFT = 1
ISSUER = "Kluis"


def new_secret() -> str:
    return pyotp.random_base32(32)  # 32 base32 characters: 160 bits


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def provisioning_uri(secret: str, account: str) -> str:
    return _totp(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def step_of(moment: datetime) -> int:
    return int(moment.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    return _totp(secret).generate_otp(step)


def matching_step(secret: str, code: str, now: datetime, used_step: int | None) -> int | None:
    """The step ``code`` belongs to if it is accepted now, else None.

    Every step in the window is compared (in constant time), so the time
    taken does not tell which one matched.
    """
    code = code.strip()
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = step_of(now)
    found = None
    for step in range(current - DRIFT, current + DRIFT + 1):
        if hmac.compare_digest(code_at(secret, step), code):
            found = step
    if found is None or (used_step is not None and found <= used_step):
        return None
    return found


def _aad(person_id: str) -> bytes:
    return encode_parts(b"kluis-totp-v1", person_id)


async def seal(provider: KeyProvider, person_id: str, secret: str) -> bytes:
    return await provider.wrap(TOTP_KEY, secret.encode("ascii"), _aad(person_id))


async def open_sealed(provider: KeyProvider, person_id: str, sealed: bytes) -> str:
    return (await provider.unwrap(TOTP_KEY, sealed, _aad(person_id))).decode("ascii")
