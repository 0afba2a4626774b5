"""Signed links: one canonical payload, HMAC-SHA256, a salt per purpose.

A link is ``/l/<token>`` (media), ``/h/<token>`` (a handover to a school) or
``/x/<token>`` (an export). The token is itsdangerous' URL-safe serialization
of one JSON payload that binds everything about the link at once::

    {"u": purpose, "s": subject (item or export id), "v": variant,
     "p": principal (who asked, or who issued a handover), "r": reference
     (handover id), "d": disposition, "t": issued at, "e": expires at}

signed with HMAC-SHA256 under a salt naming the purpose, so a token of one
purpose never verifies as another's. The secrets are shared by every
instance through the database (:mod:`vault.keys.signing`): the newest
signs, every kept one verifies (``kluis keys rotate-signing``), so a
rotation never breaks a link in flight.

Checked at use, in this order: the signature and the payload's form
(``link_invalid``, one opaque answer whatever was wrong), a time of issue in
the future (``link_invalid``), the expiry (``link_expired``). What the link
then gives is decided by the policy, asked again at that moment.

A timeline fetches the same link again and again (a thumbnail, a video's
ranges), so a signer keeps the claims of the tokens it verified (at most
:data:`VERIFIED_KEPT`, the least recently used go first, an expired one
goes at its next use). Only the signature and form checks are skipped for a
kept token: the times are checked at every use. A signer is made for one
set of secrets (:mod:`vault.share.issuing`): when a secret is retired, the
new set gets a new signer that has verified nothing yet, so a token of the
retired secret never verifies from what was kept.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, Signer, URLSafeSerializer
from itsdangerous.encoding import want_bytes

from vault.errors import KluisError

PURPOSES = ("media", "handover", "export", "publication")
PATHS = {"media": "/l/", "handover": "/h/", "export": "/x/", "publication": "/p/"}
#: Clock skew tolerated between instances for the time of issue.
ISSUE_SKEW_SECONDS = 60
#: Verified tokens whose claims a signer keeps (see the module's docstring).
VERIFIED_KEPT = 4096


class LinkInvalid(KluisError):
    status, code = 403, "link_invalid"
    default_message = "This link is not valid; ask the app for a new one."


#: The refusal of a link signed with a secret this process saw retired.
RETIRED = (
    "This link was signed with a signing secret that has since been retired "
    "(rotated out); ask the app for a new one."
)


class LinkExpired(KluisError):
    status, code = 403, "link_expired"
    default_message = "This link has expired; ask the app for a new one."

    def __init__(self, expired_at: datetime, message: str | None = None) -> None:
        super().__init__(message)
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


#: The payload's fields and the exact JSON types each may have (a bool is not an int).
_FIELDS: dict[str, tuple[type, ...]] = {
    "u": (str,),
    "s": (str,),
    "v": (str,),
    "p": (str,),
    "r": (str, type(None)),
    "d": (str,),
    "t": (int,),
    "e": (int,),
}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_DIGITS = {
    c: i for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase + "0123456789-_")
}


def _canonical(token: str) -> bool:
    """Whether both parts are in canonical unpadded base64url.

    The last character of base64 can carry unused bits, so several strings
    decode to one signature. Such twins could forge nothing, but only the
    exact token that was issued is accepted: every character from the
    alphabet, no impossible length, the unused bits zero.
    """
    body, dot, signature = token.rpartition(".")
    if not dot or not body or not signature:
        return False
    payload = body[1:] if body.startswith(".") else body  # "." marks a compressed payload
    for part in (payload, signature):
        if not _BASE64URL.fullmatch(part):
            return False
        spare = len(part) % 4  # characters past the last whole group of three bytes
        if spare == 1 or (spare and _DIGITS[part[-1]] % (16 if spare == 2 else 4)):
            return False
    return True


class _KeyedSigner(Signer):
    """itsdangerous' Signer with each secret's derived key computed once
    (itsdangerous derives it again for every signature and every check)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._derived = {key: super().derive_key(key) for key in self.secret_keys}

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        key = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        return self._derived.get(key) or super().derive_key(key)


class _Serializer(URLSafeSerializer):
    """One signer for the serializer's own salt, made once (itsdangerous makes
    a new one for every token)."""

    signer = _KeyedSigner

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own = super().make_signer(self.salt)

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        if salt is None or want_bytes(salt) == self.salt:
            return self._own
        return super().make_signer(salt)


class LinkSigner:
    def __init__(self, secrets: Sequence[bytes]) -> None:
        """``secrets`` oldest first: the last one signs, every one verifies."""
        if not secrets:
            raise ValueError("no signing secret")
        keys = list(secrets)
        self._serializers = {
            purpose: _Serializer(
                keys,
                salt=f"kluis-link-{purpose}",
                signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"},
            )
            for purpose in PURPOSES
        }
        self._verified: collections.OrderedDict[tuple[str, str], Claims] = collections.OrderedDict()

    def sign(self, claims: Claims) -> str:
        if claims.purpose not in PURPOSES:
            raise ValueError("unknown purpose")
        token: str = self._serializers[claims.purpose].dumps(claims.payload())
        return token

    def verify(self, token: str, purpose: str, now: datetime) -> Claims:
        key = (purpose, token)
        claims = self._verified.get(key)
        if claims is None:
            claims = self._decode(token, purpose)
            self._verified[key] = claims
            if len(self._verified) > VERIFIED_KEPT:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(key)
        moment = int(now.timestamp())
        if claims.issued_at > moment + ISSUE_SKEW_SECONDS or claims.expires_at < claims.issued_at:
            raise LinkInvalid()
        if moment >= claims.expires_at:
            self._verified.pop(key, None)
            raise LinkExpired(claims.expires)
        return claims

    def signed(self, token: str, purpose: str) -> bool:
        """Whether the token's signature and form are right (times unchecked)."""
        try:
            self._decode(token, purpose)
        except LinkInvalid:
            return False
        return True

    def _decode(self, token: str, purpose: str) -> Claims:
        """The claims of a token whose signature and form are right (else LinkInvalid)."""
        serializer = self._serializers[purpose]
        if not _canonical(token):
            raise LinkInvalid()
        try:
            payload = serializer.loads(token)
        except (BadData, UnicodeDecodeError, ValueError):
            raise LinkInvalid() from None
        if (
            type(payload) is not dict
            or payload.keys() != _FIELDS.keys()
            or any(type(payload[k]) not in types for k, types in _FIELDS.items())
            or payload["u"] != purpose
        ):
            raise LinkInvalid()
        return Claims(
            purpose=payload["u"],
            subject=payload["s"],
            principal=payload["p"],
            issued_at=payload["t"],
            expires_at=payload["e"],
            variant=payload["v"],
            disposition=payload["d"],
            reference=payload["r"],
        )
