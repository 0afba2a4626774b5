"""The text gate: every JSON body and upload ``meta`` part is parsed here, once.

What passes is JSON text that every later step (sealing, exports, the
offline ``index.html``, ZIP entry names, logs) can carry without breaking:

* UTF-8, and no string (key or value) holding a lone surrogate (what a
  JavaScript client sends when it cuts a string through an emoji) or a
  control character other than tab, line feed and carriage return (NUL above
  all): once stored, such text made every export that held it fail;
* each key at most once per object: with "last wins" a checked value and a
  used value can differ;
* nested at most :data:`MAX_DEPTH` deep: a thousand levels used to exhaust
  the interpreter's stack.

Anything else is :class:`~vault.errors.InvalidInput` (400). The check is
cheap on ordinary bodies: the standard library's C scanner parses, a hook
per object counts keys, and strings are only walked one by one when the
raw text holds an escape that could produce a refused character.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vault.errors import InvalidInput

#: No request of API.md nests deeper than four levels; 32 leaves room.
MAX_DEPTH = 32

#: Characters no text of this API carries: C0 controls but tab, LF, CR.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
#: Escapes that could decode to a refused character (a control or a
#: surrogate half); raw ones are already refused by the JSON scanner.
_SUSPECT_ESCAPE = re.compile(r"\\(?:[bf]|u(?:00[01]|[dD][89a-fA-F]))")
_NOT_BRACKET = bytes(c for c in range(128) if chr(c) not in "[]{}")
_INNERMOST = re.compile(rb"\{\}|\[\]")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def parse_json(raw: bytes, what: str = "The body", *, depth: bool = True) -> Any:
    """The JSON value in ``raw``, or :class:`InvalidInput` saying what to fix.

    ``depth=False`` leaves the depth to the caller: a value that then fits a
    model is as shallow as the model (none nests more than four levels), so
    :mod:`vault.api.body` checks the depth only of a value that did not fit,
    before anything walks it (:func:`refuse_too_deep`).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} is not UTF-8 text; send JSON encoded as UTF-8.") from None
    try:
        value = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise InvalidInput(
            f"{what} names the field '{_shown(exc.key)}' twice; send each field once."
        ) from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply (at most {MAX_DEPTH} levels).") from None
    except ValueError:
        raise InvalidInput(f"{what} is not valid JSON; send a JSON object.") from None
    if depth:
        refuse_too_deep(text, what)
    if _SUSPECT_ESCAPE.search(text) is not None:
        _refuse_bad_strings(value, what)
    return value


def refuse_too_deep(text: str, what: str = "The body") -> None:
    if _too_deep(text):
        raise InvalidInput(f"{what} is nested too deeply (at most {MAX_DEPTH} levels).")


def bad_text(value: str) -> str | None:
    """Why ``value`` is no acceptable text (None when it is)."""
    if _CONTROL.search(value) is not None:
        return "a control character (such as NUL)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "half of a character (a lone surrogate; was a string cut through an emoji?)"
    return None


def _too_deep(text: str) -> bool:
    """Nesting deeper than MAX_DEPTH, for text that already parsed as JSON.

    Counting brackets bounds the depth, so most bodies stop there; otherwise
    the brackets outside strings are peeled, the innermost pairs per pass.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    # Without its escaped backslashes and quotes, every quote left opens or
    # closes a string, so the even pieces between quotes are the structure.
    unquoted = text.replace("\\\\", "").replace('\\"', "").split('"')[::2]
    shape = "".join(unquoted).encode("ascii", "ignore").translate(None, _NOT_BRACKET)
    for _ in range(MAX_DEPTH):
        # One pass takes off exactly the pairs that are innermost now.
        shape = _INNERMOST.sub(b"", shape)
        if not shape:
            return False
    return True


def _refuse_bad_strings(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            reason = bad_text(text)
            if reason is not None:
                raise InvalidInput(f"{what} holds text with {reason}; send valid UTF-8 text.")


def _shown(key: str) -> str:
    return key if bad_text(key) is None and len(key) <= 64 else "(unprintable)"
