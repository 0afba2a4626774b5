"""Hostile text and shapes at the edge, fuzzed: never a 5xx, the audit chain whole.

Hypothesis draws JSON and multipart requests for the upload, diary,
directory and link calls of a served vault: text with lone surrogates, NUL
and other controls, BSNs, deep or odd JSON, broken multipart bodies and
boundaries, hostile file names. Each answer must be below 500; afterwards
the audit chain must verify (``kluis audit verify``'s check). Bounded in
examples so the suite stays quick; issue 17, "How it must be shown".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.served import Served, served_vault
from tests.files import jpeg_with_secrets
from vault.api.resources import DB, KEYRING
from vault.audit.verify import verify
from vault.keys.provider import audit_check

EXAMPLES = 400
HOSTILE = [
    "\ud800",
    "\udfff",
    "\ud83d",
    "\x00",
    "\x1b",
    "\u202e",
    "111222333",
    "111.222.333",
    "%00",
    "\r\n",
]
text = st.one_of(
    st.sampled_from(["Noor", "De Boomhut", "Rupsjes", "Goed gegeten.", "x"]),
    st.lists(
        st.one_of(st.characters(), st.sampled_from(HOSTILE), st.text(max_size=5)), max_size=12
    ).map("".join),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_vault(tmp_path_factory.mktemp("fuzz") / "data") as vault:
        yield vault


def _json(value: Any) -> bytes:
    # ensure_ascii writes a lone surrogate as a \\udXXX escape, as JavaScript does.
    return json.dumps(value).encode()


@st.composite
def fields(draw: st.DrawFn, shape: dict[str, st.SearchStrategy[Any]]) -> bytes:
    """A body with the call's fields (each maybe left out) or something else entirely."""
    kind = draw(st.sampled_from(["fields", "fields", "fields", "any", "raw", "deep", "twice"]))
    if kind == "any":
        return _json(draw(json_values))
    if kind == "raw":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        depth = draw(st.integers(20, 1200))
        return b'{"name": ' + b"[" * depth + b"]" * depth + b"}"
    body = {name: draw(strategy) for name, strategy in shape.items() if draw(st.integers(0, 4))}
    if kind == "twice" and body:
        first = next(iter(body))
        return _json(body)[:-1] + b", " + _json({first: draw(text)})[1:]
    return _json(body)


@st.composite
def multipart(draw: st.DrawFn) -> tuple[bytes, str]:
    boundary = draw(st.sampled_from(["kluis", "x" * 70, "", "a b", "--"]))
    meta = draw(
        fields(
            {
                "kind": st.sampled_from(["photo", "video", "diary", "observation"]) | text,
                "title": text,
                "taken_at": st.sampled_from(["2026-11-21", "2026-11-21T10:00:00Z"]) | text,
                "tagged_children": st.lists(text, max_size=3),
            }
        )
    )
    name = draw(text)
    data = draw(st.sampled_from([jpeg_with_secrets(), b"", b"\x00" * 10])) + draw(
        st.binary(max_size=32)
    )
    disposition = draw(
        st.sampled_from(
            [
                f'name="file"; filename="{name}"',
                f"name=\"file\"; filename*=UTF-8''{quote(name.encode('utf-8', 'surrogatepass'))}",
                'name="file"',
                'name="other"',
            ]
        )
    )
    parts = [
        b'Content-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n'
        + meta,
        disposition.encode("utf-8", "surrogatepass") + b"\r\n\r\n" + data,
    ]
    if draw(st.booleans()):
        parts = [parts[1], parts[0]] if draw(st.booleans()) else [*parts, parts[1]]
    sep = b"--" + boundary.encode()
    body = b"".join(
        sep
        + b"\r\n"
        + (b"Content-Disposition: form-data; " + p if not p.startswith(b"Content") else p)
        + b"\r\n"
        for p in parts
    )
    body += sep + b"--\r\n"
    header = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                "multipart/form-data",
                "multipart/form-data; boundary=",
            ]
        )
    )
    return body, header


def test_hostile_requests_never_answer_5xx_and_the_chain_holds(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    w = served.w
    session = requests.Session()
    calls: list[tuple[str, str, str, st.SearchStrategy[bytes]]] = [
        ("POST", "/v1/locations", served.admin, fields({"name": text})),
        (
            "POST",
            "/v1/groups",
            served.admin,
            fields({"name": text, "location_id": st.just(served.location) | text}),
        ),
        (
            "POST",
            "/v1/children",
            served.admin,
            fields(
                {
                    "first_name": text,
                    "last_name": text,
                    "birth_date": st.sampled_from(["2023-01-01", "2023-02-30"]) | text,
                    "group_id": st.just(w.group) | text,
                }
            ),
        ),
        (
            "POST",
            "/v1/people",
            served.admin,
            fields(
                {"name": text, "role": st.sampled_from(["staff", "guardian"]) | text, "email": text}
            ),
        ),
        ("POST", f"/v1/people/{served.victim}/block", served.admin, fields({"reason": text})),
        (
            "POST",
            f"/v1/children/{w.child}/items",
            w.staff,
            fields(
                {
                    "kind": st.just("diary") | text,
                    "date": st.sampled_from(["2026-11-21"]) | text,
                    "text": text,
                    "photo_ids": st.lists(st.just(served.photo) | text, max_size=3),
                }
            ),
        ),
        (
            "POST",
            f"/v1/items/{served.photo}/links",
            w.parent,
            fields(
                {
                    "variant": st.sampled_from(["original", "thumb"]) | text,
                    "ttl_seconds": st.integers(-5, 2**70),
                    "disposition": st.just("attachment") | text,
                }
            ),
        ),
        (
            "POST",
            "/v1/links",
            w.parent,
            fields(
                {
                    "items": st.lists(
                        st.fixed_dictionaries(
                            {"item_id": st.just(served.photo) | text},
                            optional={"variant": st.just("thumb") | text},
                        )
                        | json_values,
                        max_size=5,
                    ),
                    "ttl_seconds": st.integers(-5, 2**70) | text,
                }
            ),
        ),
    ]
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        if data.draw(st.integers(0, 3)) == 0:
            body, content_type = data.draw(multipart())
            method, path, token = "POST", f"/v1/children/{w.child}/items", w.staff
        else:
            method, path, token, strategy = data.draw(st.sampled_from(calls))
            body = data.draw(strategy)
            content_type = data.draw(st.sampled_from(["application/json"] * 5 + ["text/plain"]))
        response = session.request(
            method,
            served.base + path,
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            timeout=30,
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (path, body[:300], response.text[:300])
        if response.status_code >= 400:
            assert response.json()["error"]["code"]

    fuzz()
    with capsys.disabled():
        print(f"\nfuzz: {sum(seen.values())} requests, answers {dict(sorted(seen.items()))}")
    assert sum(seen.values()) >= EXAMPLES // 2
    check = served.run(verify(served.app[DB], audit_check(served.app[KEYRING])))
    assert check.ok, check.as_json()
