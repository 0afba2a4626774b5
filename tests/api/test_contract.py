"""The edges of the contract: how bodies are read, refused and described.

Issue 22's edges (duplicate keys, a body of another type, an empty body
where every field is optional, the 401 challenge), issue 17's eight request
shapes that answered 500 or stored text that broke exports later, and the
BSN check on every free-text field, as one table the models define.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest
from sqlalchemy import func, select, text

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, nothing_stored, upload
from tests.helpers.world import World, world
from vault.api import create_app
from vault.api.body import text_fields
from vault.api.openapi import build_document, declared
from vault.api.resources import DB
from vault.config import Settings
from vault.db.schema import holds, items

BSN = "111222333"  # passes the eleven-test, as every BSN does


def _headers(api: Api, token: str | None = None, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or api.admin}", **extra}


async def _raw(
    api: Api, path: str, body: bytes, content_type: str = "application/json", token: str = ""
) -> tuple[int, Any]:
    response = await api.client.post(
        path, data=body, headers=_headers(api, token or None, **{"Content-Type": content_type})
    )
    answer = await response.json() if response.content_type == "application/json" else None
    return response.status, answer


# -- issue 22: the edges of reading a body ---------------------------------------


async def test_a_key_twice_is_refused(api: Api) -> None:
    status, answer = await _raw(api, "/v1/locations", b'{"name": "A", "name": "B"}')
    assert (status, answer["error"]["code"]) == (400, "invalid_input")
    assert "'name' twice" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"name": "A"}'),
        ("application/x-www-form-urlencoded", b"name=A"),
        ("multipart/form-data; boundary=x", b'--x\r\n\r\n{"name": "A"}\r\n--x--\r\n'),
        ("application/octet-stream", b'{"name": "A"}'),
    ],
)
async def test_a_body_of_another_type_is_unsupported(
    api: Api, content_type: str, body: bytes
) -> None:
    status, answer = await _raw(api, "/v1/locations", body, content_type)
    assert (status, answer["error"]["code"]) == (415, "unsupported_type")
    assert "application/json" in answer["error"]["message"]
    async with api.client.app[DB].connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM locations")) == 0


async def test_an_empty_body_takes_the_defaults_where_every_field_is_optional(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    status, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    assert status == 201
    for path, token in (
        (f"/v1/items/{photo['id']}/links", w.parent),
        (f"/v1/children/{w.child}/exports", w.parent),
        ("/v1/retention/run", w.officer),
    ):
        for content_type in (None, "application/json"):
            headers = _headers(api, token)
            if content_type:
                headers["Content-Type"] = content_type
            response = await api.client.post(path, headers=headers)
            assert response.status in (200, 201), (path, await response.text())
    # A call that needs fields says so, with the body missing.
    status, answer = await _raw(api, "/v1/locations", b"")
    assert (status, answer["error"]["code"]) == (400, "invalid_input")


async def test_every_401_carries_the_bearer_challenge(api: Api) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer kl_0000000000000000.nope"},
        {"Authorization": "Basic x"},
    ):
        response = await api.client.get("/v1/audit/verify", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bad_fields_are_named_with_what_to_send(api: Api) -> None:
    w = await world(api)
    cases = [
        ({"name": 5}, "/v1/locations", "'name' must be a string"),
        ({"name": "x" * 501}, "/v1/locations", "'name' is longer than 500"),
        ({"name": "   "}, "/v1/locations", "'name' must not be empty"),
        (
            {"first_name": "A", "last_name": "B", "birth_date": "2023-02-30", "group_id": w.group},
            "/v1/children",
            "'birth_date' must be a date like 2026-11-21",
        ),
        ({"name": "A", "role": "wizard"}, "/v1/people", "'role' must be one of: admin"),
    ]
    for body, path, message in cases:
        status, answer = await api.call("POST", path, api.admin, body)
        assert (status, answer["error"]["code"]) == (400, "invalid_input"), (path, answer)
        assert message in answer["error"]["message"], answer
    status, answer = await api.call(
        "POST", "/v1/links", w.parent, {"items": [{"item_id": "a", "colour": "red"}]}
    )
    assert status == 400
    assert "Unknown field 'items[0].colour'" in answer["error"]["message"]


# -- issue 17: eight request shapes that answered 500 or broke exports later -----


async def _the_shapes(api: Api, w: World) -> dict[str, tuple[int, Any]]:
    await consent(api, w)
    await consent(api, w, "diary")
    await consent(api, w, "school_handover")
    status, observation = await upload(
        api, w.staff, w.child, {"kind": "observation"}, b"%PDF-1.4\n" + b"0" * 600, "o.pdf"
    )
    assert status == 201
    lone = "x\ud800"
    child = w.child
    return {
        "title": await upload(
            api, w.staff, child, {"kind": "photo", "title": lone}, jpeg_with_secrets()
        ),
        "diary text": await api.call(
            "POST",
            f"/v1/children/{child}/items",
            w.staff,
            {"kind": "diary", "date": "2026-11-21", "text": lone},
        ),
        "child's name": await api.call(
            "POST",
            "/v1/children",
            api.admin,
            {"first_name": lone, "last_name": "B", "birth_date": "2023-01-01", "group_id": w.group},
        ),
        "handover recipient": await api.call(
            "POST", f"/v1/items/{observation['id']}/handovers", w.staff, {"recipient": lone}
        ),
        "hold reason": await api.call(
            "POST", f"/v1/children/{child}/holds", w.officer, {"reason": lone}
        ),
        "block reason": await api.call(
            "POST", f"/v1/people/{w.parent_id}/block", api.admin, {"reason": lone}
        ),
        "nested 1000 deep": await _raw(
            api, "/v1/locations", b'{"name": ' + b"[" * 1000 + b"]" * 1000 + b"}"
        ),
        "multipart without boundary": await _raw(
            api, f"/v1/children/{child}/items", b"--x\r\n\r\n", "multipart/form-data", w.staff
        ),
    }


async def test_the_eight_shapes_are_refused_as_invalid_input(api: Api) -> None:
    w = await world(api)
    answers = await _the_shapes(api, w)
    assert {shape: status for shape, (status, _) in answers.items()} == dict.fromkeys(answers, 400)
    assert {answer["error"]["code"] for _, answer in answers.values()} == {"invalid_input"}
    # Nothing of them was kept: the child's export (what used to fail) works.
    async with api.client.app[DB].connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(holds)) == 0
        assert (
            await conn.scalar(
                select(func.count()).select_from(items).where(items.c.kind != "observation")
            )
            == 0
        )
    export = await api.ok("POST", f"/v1/children/{w.child}/exports", {}, w.parent)
    response = await api.client.get(urlsplit(export["url"]).path)
    assert response.status == 200
    assert len(await response.read()) == export["size"]


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "tab\tand\nnew line are fine", "\ud83d\ude00 a whole emoji is fine", "bell\x07"],
)
async def test_control_characters_other_than_white_space_are_refused(api: Api, value: str) -> None:
    status, answer = await api.call("POST", "/v1/locations", api.admin, {"name": value})
    if "fine" in value:
        assert status == 201, answer
    else:
        assert (status, answer["error"]["code"]) == (400, "invalid_input")
        assert "control character" in answer["error"]["message"]


async def test_a_body_nested_to_the_limit_is_read_and_one_deeper_is_not(api: Api) -> None:
    # 32 levels are parsed (and then refused by the model, 400 either way,
    # but for its shape); 33 are refused before any of it is looked at.
    deep = b'{"name": ' + b"[" * 31 + b"]" * 31 + b"}"
    status, answer = await _raw(api, "/v1/locations", deep)
    assert status == 400
    assert "'name' must be a string" in answer["error"]["message"]
    deeper = b'{"name": ' + b"[" * 32 + b"]" * 32 + b"}"
    _, answer = await _raw(api, "/v1/locations", deeper)
    assert "nested too deeply" in answer["error"]["message"]


# -- the BSN check: every free-text field, one table -------------------------------


def _free_text_fields() -> set[tuple[str, str, str]]:
    """(method, path, field) of every free-text field the document's bodies have."""
    app = create_app(Settings())
    out = set()
    for route in app.router.routes():
        spec = declared(route.handler)
        if spec is None or route.resource is None:
            continue
        for model in (spec.body, spec.upload):
            if model is not None:
                for name, _ in text_fields(model):
                    out.add((route.method, route.resource.canonical, name))
    return out


async def _bsn_cases(api: Api, w: World) -> dict[tuple[str, str, str], Any]:
    await consent(api, w)
    await consent(api, w, "diary")
    await consent(api, w, "school_handover")
    _, observation = await upload(
        api, w.staff, w.child, {"kind": "observation"}, b"%PDF-1.4\n" + b"0" * 600, "o.pdf"
    )
    child_body = {
        "first_name": "A",
        "last_name": "B",
        "birth_date": "2023-01-01",
        "group_id": w.group,
    }
    location = (await api.ok("POST", "/v1/locations", {"name": "L"}))["id"]
    items_path = "/v1/children/{id}/items"
    diary = await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": "2026-11-21", "text": "Goed geslapen."},
        w.staff,
    )
    filed = await api.ok("POST", "/v1/requests", {"type": "access"}, w.parent)
    replaced = aiohttp.FormData()
    replaced.add_field("file", b"%PDF-1.4\n" + b"1" * 600, filename="Zie BSN " + BSN + ".pdf")

    def call(method: str, path: str, token: str, body: dict[str, Any]) -> Any:
        return api.call(method, path, token, body)

    with_bsn = f"Zie BSN {BSN[:3]}.{BSN[3:6]}.{BSN[6:]}"
    return {
        ("POST", "/v1/people", "name"): call(
            "POST", "/v1/people", api.admin, {"name": with_bsn, "role": "staff"}
        ),
        ("POST", "/v1/people", "email"): call(
            "POST", "/v1/people", api.admin, {"name": "A", "role": "staff", "email": f"{BSN}@x.nl"}
        ),
        ("POST", "/v1/people/{id}/block", "reason"): call(
            "POST", f"/v1/people/{w.parent_id}/block", api.admin, {"reason": with_bsn}
        ),
        ("POST", "/v1/locations", "name"): call(
            "POST", "/v1/locations", api.admin, {"name": with_bsn}
        ),
        ("POST", "/v1/groups", "name"): call(
            "POST", "/v1/groups", api.admin, {"location_id": location, "name": with_bsn}
        ),
        ("POST", "/v1/children", "first_name"): call(
            "POST", "/v1/children", api.admin, {**child_body, "first_name": with_bsn}
        ),
        ("PATCH", "/v1/children/{id}", "first_name"): call(
            "PATCH", f"/v1/children/{w.child}", api.admin, {"first_name": with_bsn}
        ),
        ("PATCH", "/v1/children/{id}", "last_name"): call(
            "PATCH", f"/v1/children/{w.child}", api.admin, {"last_name": with_bsn}
        ),
        ("POST", "/v1/children", "last_name"): call(
            "POST", "/v1/children", api.admin, {**child_body, "last_name": with_bsn}
        ),
        ("POST", items_path, "title"): upload(
            api, w.staff, w.child, {"kind": "photo", "title": with_bsn}, jpeg_with_secrets()
        ),
        ("POST", items_path, "text"): call(
            "POST",
            f"/v1/children/{w.child}/items",
            w.staff,
            {"kind": "diary", "date": "2026-11-21", "text": with_bsn},
        ),
        ("POST", "/v1/items/{id}/handovers", "recipient"): call(
            "POST", f"/v1/items/{observation['id']}/handovers", w.staff, {"recipient": with_bsn}
        ),
        ("POST", "/v1/requests", "note"): call(
            "POST", "/v1/requests", w.parent, {"type": "access", "note": with_bsn}
        ),
        ("POST", "/v1/requests/{id}/answer", "note"): call(
            "POST",
            f"/v1/requests/{filed['id']}/answer",
            w.officer,
            {"outcome": "granted", "note": with_bsn},
        ),
        ("POST", "/v1/children/{id}/restriction", "reason"): call(
            "POST", f"/v1/children/{w.child}/restriction", w.officer, {"reason": with_bsn}
        ),
        ("POST", "/v1/items/{id}/links", "reason"): call(
            "POST", f"/v1/items/{observation['id']}/links", w.officer, {"reason": with_bsn}
        ),
        ("POST", "/v1/links", "reason"): call(
            "POST",
            "/v1/links",
            w.officer,
            {"items": [{"item_id": observation["id"]}], "reason": with_bsn},
        ),
        ("POST", "/v1/children/{id}/exports", "reason"): call(
            "POST", f"/v1/children/{w.child}/exports", w.officer, {"reason": with_bsn}
        ),
        # Sign-in takes no token; an address like that belongs to nobody.
        ("POST", "/v1/sessions", "email"): api.call(
            "POST", "/v1/sessions", json={"email": f"{BSN}@x.nl", "password": "a" * 12}
        ),
        ("POST", "/v1/children/{id}/holds", "reason"): call(
            "POST", f"/v1/children/{w.child}/holds", w.officer, {"reason": with_bsn}
        ),
        ("PATCH", "/v1/items/{id}", "title"): call(
            "PATCH", f"/v1/items/{observation['id']}", w.staff, {"title": with_bsn}
        ),
        ("PATCH", "/v1/items/{id}", "text"): call(
            "PATCH", f"/v1/items/{diary['id']}", w.staff, {"text": with_bsn}
        ),
        ("PUT", "/v1/items/{id}/file", "file name"): api.call(
            "PUT", f"/v1/items/{observation['id']}/file", w.staff, data=replaced
        ),
        ("POST", items_path, "file name"): upload(
            api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets(), f"{with_bsn}.jpg"
        ),
    }


async def test_a_bsn_in_any_free_text_field_or_file_name_is_never_stored(api: Api) -> None:
    w = await world(api)
    cases = await _bsn_cases(api, w)
    # The table covers every free-text field the models declare, and the file name.
    assert {case for case in cases if case[2] != "file name"} == _free_text_fields()
    for case, pending in cases.items():
        status, answer = await pending
        assert status == 422, (case, answer)
        assert answer["error"]["code"] == "bsn_not_stored"
        assert BSN not in json.dumps(answer)
    async with api.client.app[DB].connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(holds)) == 0
        assert await conn.scalar(text("SELECT count(*) FROM restrictions")) == 0
        assert await conn.scalar(text("SELECT count(*) FROM access_reasons")) == 0
        assert await conn.scalar(text("SELECT count(*) FROM requests")) == 1
        answered = "SELECT count(*) FROM requests WHERE answered_at IS NOT NULL"
        assert await conn.scalar(text(answered)) == 0
        assert (
            await conn.scalar(
                select(func.count())
                .select_from(items)
                .where(items.c.kind.not_in(("observation", "diary")))
            )
            == 0
        )
        # The corrections and the replaced file changed nothing.
        changed = select(func.count()).select_from(items).where(items.c.updated_at.is_not(None))
        assert await conn.scalar(changed) == 0
        diaries = select(func.count()).select_from(items).where(items.c.kind == "diary")
        assert await conn.scalar(diaries) == 1


# -- the document says what is served ------------------------------------------------


def test_every_model_field_is_in_the_document() -> None:
    """One source: the components are the models, field for field."""
    document = build_document(create_app(Settings()))
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        if name == "Error":
            continue
        model = _model(name)
        fields = {f.encode_name for f in msgspec.structs.fields(model)}
        assert set(schema["properties"]) == fields, name


def _model(name: str) -> Any:
    import importlib
    import pkgutil

    import vault.api.models as package

    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if isinstance(getattr(module, name, None), type):
            return getattr(module, name)
    raise AssertionError(name)


def test_the_document_describes_queries_links_and_refusals() -> None:
    document = build_document(create_app(Settings()))
    paths = document["paths"]

    def query(path: str) -> set[str]:
        return {p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    assert query("/v1/children/{id}/items") == {"kind", "limit", "cursor", "before"}
    assert query("/v1/children/{id}/access-log") == {"limit", "before"}
    for path in ("/l/{token}", "/h/{token}", "/x/{token}"):
        for method in ("get", "head"):
            operation = paths[path][method]
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert headers == {"Range", "If-Range", "If-None-Match", "If-Match"}
            assert {"200", "206", "304", "412", "416"} <= set(operation["responses"])
            assert "Content-Range" in operation["responses"]["416"]["headers"]
            assert operation["security"] == []
    for path, methods in paths.items():
        for method, operation in methods.items():
            responses = operation["responses"]
            if path.startswith("/v1/"):
                assert {"429", "503"} <= set(responses), (path, method)
                assert "Retry-After" in responses["429"]["headers"]
            if path.startswith("/v1/") and operation.get("security") != []:
                # Every call with a token (not the public sign-in calls).
                assert "401" in responses, (path, method)
                assert "WWW-Authenticate" in responses["401"]["headers"]
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= set(responses), (path, method)
            for status, answer in responses.items():
                if int(status) >= 400 and method != "head":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema["properties"]["error"]["properties"]["code"]["enum"]
    consent_type = paths["/v1/children/{id}/consents/{type}"]["put"]["parameters"][1]
    assert consent_type["schema"]["enum"] == [
        "diary",
        "external_publication",
        "photo",
        "school_handover",
    ]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def multipart(disposition: bytes, data: bytes, meta: bytes = b'{"kind": "photo"}') -> bytes:
    """An upload body written out by hand, for file names no client library sends."""
    return (
        b'--b\r\nContent-Disposition: form-data; name="meta"\r\n'
        b"Content-Type: application/json\r\n\r\n" + meta + b"\r\n"
        b"--b\r\nContent-Disposition: form-data; " + disposition + b"\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--b--\r\n"
    )


@pytest.mark.parametrize(
    "disposition",
    [
        b'name="file"; filename="geheim\x00naam.jpg"',
        b"name=\"file\"; filename*=UTF-8''geheim%00naam.jpg",
        b"name=\"file\"; filename*=UTF-8''geheim%1Bnaam.jpg",
        b"name=\"file\"; filename*=UTF-8''geheim%ED%A0%80naam.jpg",
    ],
)
async def test_an_upload_file_name_with_a_control_character_is_refused_and_not_logged(
    api: Api, caplog: pytest.LogCaptureFixture, disposition: bytes
) -> None:
    w = await world(api)
    await consent(api, w)
    body = multipart(disposition, jpeg_with_secrets())
    status, answer = await _raw(
        api, f"/v1/children/{w.child}/items", body, "multipart/form-data; boundary=b", w.staff
    )
    assert (status, answer["error"]["code"]) == (400, "invalid_input"), answer
    assert "geheim" not in caplog.text
    assert "geheim" not in answer["error"]["message"]
    await nothing_stored(api)
