"""Signed links: one canonical payload, HMAC-SHA256, a salt per purpose.

A link is ``/l/<token>`` (media), ``/h/<token>`` (a handover to a school) or
``/x/<token>`` (an export). The token is itsdangerous' URL-safe serialization
of one JSON payload that binds everything about the link at once::

    {"u": purpose, "s": subject (item or export id), "v": variant,
     "p": principal (who asked, or who issued a handover), "r": reference
     (handover id), "d": disposition, "t": issued at, "e": expires at}

signed with HMAC-SHA256 under a salt naming the purpose, so a token of one
purpose never verifies as another's. The secrets live in the keyring: the
newest signs, every kept one verifies (``kluis keys rotate-signing``), so a
rotation never breaks a link in flight.

Checked at use, in this order: the signature and the payload's form
(``link_invalid``, one opaque answer whatever was wrong), a time of issue in
the future (``link_invalid``), the expiry (``link_expired``). What the link
then gives is decided by the policy, asked again at that moment.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from vault.crypto.keyring import SigningSecret
from vault.errors import KluisError

PURPOSES = ("media", "handover", "export")
PATHS = {"media": "/l/", "handover": "/h/", "export": "/x/"}
#: Clock skew tolerated between instances for the time of issue.
ISSUE_SKEW_SECONDS = 60


class LinkInvalid(KluisError):
    status, code = 403, "link_invalid"
    default_message = "This link is not valid; ask the app for a new one."


class LinkExpired(KluisError):
    status, code = 403, "link_expired"
    default_message = "This link has expired; ask the app for a new one."

    def __init__(self, expired_at: datetime) -> None:
        super().__init__()
        self.expired_at = expired_at


@dataclasses.dataclass(frozen=True)
class Claims:
    purpose: str
    subject: str
    principal: str
    issued_at: int
    expires_at: int
    variant: str = "original"
    disposition: str = "inline"
    reference: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "u": self.purpose,
            "s": self.subject,
            "v": self.variant,
            "p": self.principal,
            "r": self.reference,
            "d": self.disposition,
            "t": self.issued_at,
            "e": self.expires_at,
        }

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "u": str,
    "s": str,
    "v": str,
    "p": str,
    "r": (str, type(None)),
    "d": str,
    "t": int,
    "e": int,
}


def _canonical(token: str) -> bool:
    """Whether both parts are in canonical base64.

    The last character of base64 can carry unused bits, so several strings
    decode to one signature. Such twins could forge nothing, but only the
    exact token that was issued is accepted.
    """
    body, dot, signature = token.rpartition(".")
    if not dot or not body or not signature:
        return False
    payload = body[1:] if body.startswith(".") else body  # "." marks a compressed payload
    try:
        return all(
            base64_encode(base64_decode(part)).decode("ascii") == part
            for part in (payload, signature)
        )
    except (BadData, ValueError, UnicodeError):
        return False


class LinkSigner:
    def __init__(self, secrets: list[SigningSecret]) -> None:
        if not secrets:
            raise ValueError("no signing secret")
        keys = [secret.reveal() for secret in secrets]
        self._serializers = {
            purpose: URLSafeSerializer(
                keys,
                salt=f"kluis-link-{purpose}",
                signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"},
            )
            for purpose in PURPOSES
        }

    def sign(self, claims: Claims) -> str:
        if claims.purpose not in PURPOSES:
            raise ValueError("unknown purpose")
        token: str = self._serializers[claims.purpose].dumps(claims.payload())
        return token

    def verify(self, token: str, purpose: str, now: datetime) -> Claims:
        serializer = self._serializers[purpose]
        if not _canonical(token):
            raise LinkInvalid()
        try:
            payload = serializer.loads(token)
        except (BadData, UnicodeDecodeError, ValueError):
            raise LinkInvalid() from None
        if (
            not isinstance(payload, dict)
            or set(payload) != set(_FIELDS)
            or any(
                not isinstance(payload[k], t) or isinstance(payload[k], bool)
                for k, t in _FIELDS.items()
            )
            or payload["u"] != purpose
        ):
            raise LinkInvalid()
        claims = Claims(
            purpose=payload["u"],
            subject=payload["s"],
            principal=payload["p"],
            issued_at=payload["t"],
            expires_at=payload["e"],
            variant=payload["v"],
            disposition=payload["d"],
            reference=payload["r"],
        )
        moment = int(now.timestamp())
        if claims.issued_at > moment + ISSUE_SKEW_SECONDS or claims.expires_at < claims.issued_at:
            raise LinkInvalid()
        if moment >= claims.expires_at:
            raise LinkExpired(claims.expires)
        return claims
