"""The vault never stores a citizen service number (BSN).

Refused: a field whose name says it carries one, anywhere in a JSON body;
and, in directory fields, any 9-digit number (spaces, dots or dashes between
digits allowed) that passes the Dutch eleven-test, which every BSN passes.
"""

from __future__ import annotations

import re
from typing import Any

from vault.errors import KluisError

_NAME = re.compile(
    r"(^|[^a-z])(bsn|burgerservicenummer|sofi(nummer)?|citizen_?service_?number)", re.I
)
_NINE_DIGITS = re.compile(r"(?<![\d])\d(?:[ .-]?\d){8}(?![\d])")


class BsnNotStored(KluisError):
    status, code = 422, "bsn_not_stored"
    default_message = (
        "This looks like a citizen service number (BSN); the vault never stores one. "
        "Remove it and send the request again."
    )


def passes_eleven_test(digits: str) -> bool:
    if len(digits) != 9 or not digits.isdigit() or digits == "0" * 9:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def contains_bsn(text: str) -> bool:
    for match in _NINE_DIGITS.finditer(text):
        if passes_eleven_test(re.sub(r"[ .-]", "", match.group())):
            return True
    return False


def refuse_bsn(value: Any, *, scan_values: bool) -> None:
    """Raise :class:`BsnNotStored` if ``value`` (a parsed JSON body) carries a BSN."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if _NAME.search(str(key)):
                raise BsnNotStored()
            refuse_bsn(inner, scan_values=scan_values)
    elif isinstance(value, list):
        for inner in value:
            refuse_bsn(inner, scan_values=scan_values)
    elif (
        scan_values
        and isinstance(value, (str, int))
        and not isinstance(value, bool)
        and contains_bsn(str(value))
    ):
        raise BsnNotStored()
