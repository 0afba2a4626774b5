"""The one error tree of Kluis.

Every refusal the service can give is a subclass of :class:`KluisError` that
carries its HTTP status and the stable ``code`` from API.md. The API's error
middleware is the only place that turns these into responses; nothing below
the API layer knows about HTTP. Messages say what was wrong and what to do and
never contain secrets, tokens or children's names.
"""

from __future__ import annotations

from typing import ClassVar


class KluisError(Exception):
    """Base of every domain error. ``status`` and ``code`` follow API.md."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Something went wrong inside the vault; nothing was changed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(KluisError):
    status, code = 400, "invalid_input"
    default_message = "The request is malformed; check the fields against the API description."


class Unauthenticated(KluisError):
    status, code = 401, "unauthenticated"
    default_message = "Send a valid token as 'Authorization: Bearer <token>'."


class TotpRequired(KluisError):
    """A one-time code is needed: missing, wrong, or not yet set up."""

    status, code = 401, "totp_required"
    default_message = "Send the six-digit code from your authenticator app as 'totp'."


class Forbidden(KluisError):
    status, code = 403, "forbidden"
    default_message = "Your role does not allow this."


class ConsentMissing(KluisError):
    status, code = 403, "consent_missing"
    default_message = "A consent this needs is not in force."


class OutsideWindow(KluisError):
    status, code = 403, "outside_window"
    default_message = "This child's records are archived or not yet visible to your role."


class Restricted(KluisError):
    status, code = 403, "restricted"
    default_message = (
        "Processing of this child's records is restricted; only the privacy officer reaches them."
    )


class Blocked(KluisError):
    status, code = 403, "blocked"
    default_message = "This account is blocked; contact the organisation."


class NotFound(KluisError):
    status, code = 404, "not_found"
    default_message = "There is no such thing, or nothing you are related to."


class Conflict(KluisError):
    status, code = 409, "conflict"
    default_message = "This conflicts with the current state; reload and try again."


class Destroyed(KluisError):
    status, code = 410, "destroyed"
    default_message = "This record was destroyed under the retention rules or an erasure request."


class TooLarge(KluisError):
    status, code = 413, "too_large"
    default_message = "The upload is larger than the configured limit for its kind."


class RateLimited(KluisError):
    status, code = 429, "rate_limited"
    default_message = "Too many failed attempts; wait before trying again."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class StorageUnavailable(KluisError):
    """Blob storage or the database cannot be reached; nothing was written."""

    status, code = 503, "storage_unavailable"
    default_message = "Storage is unreachable right now; nothing was written. Try again later."


class LeaseLost(KluisError):
    """An upload's lease on its blobs ran out before its record was committed
    (vault/items/pending.py): the sweeper may have taken a blob, so nothing
    is stored."""

    status, code = 503, "storage_unavailable"
    default_message = "The upload took too long to be kept safe and was not stored; send it again."


class ConfigError(KluisError):
    """The configuration is invalid; raised before the service starts."""

    code = "config_error"
