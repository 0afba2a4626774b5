"""``GET /v1/me`` (the web app's start: who am I, which children may I see)
and the app's own files: served from the package, under a strict policy."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import timedelta
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.helpers.api import Api
from tests.helpers.world import world

pytestmark = pytest.mark.localdisk

STATIC = Path(__file__).resolve().parents[2] / "vault" / "web" / "static"


async def _children(api: Api, token: str) -> list[str]:
    status, body = await api.call("GET", "/v1/me", token)
    assert status == 200, body
    return [child["first_name"] for child in body["children"]]


async def test_each_person_lists_only_the_children_the_policy_lets_them_see(api: Api) -> None:
    w = await world(api)
    status, me = await api.call("GET", "/v1/me", w.parent)
    assert status == 200
    assert me["role"] == "guardian"
    assert me["name"] == "parent"
    [noor] = me["children"]
    assert noor == {
        "id": w.child,
        "first_name": "Noor",
        "last_name": "Jansen",
        "birth_date": "2023-04-02",
        "group_id": w.group,
        "group_name": "Rupsjes",
        "placement": {"start_date": "2024-01-01", "end_date": None},
        "relation": "contract_parent",
    }
    assert await _children(api, w.co_separate) == ["Noor"]
    assert await _children(api, w.stranger_parent) == ["Sem"]
    assert await _children(api, w.staff) == ["Noor"]  # group and mentorship: once
    assert await _children(api, w.other_staff) == ["Sem"]
    assert await _children(api, w.manager) == ["Noor", "Sem"]  # by group name
    assert await _children(api, w.officer) == []
    assert await _children(api, api.admin) == []
    status, body = await api.call("GET", "/v1/me")
    assert status == 401, body


async def test_a_child_out_of_the_guardians_window_leaves_their_list(api: Api) -> None:
    w = await world(api)
    end = api.clock.now.date() + timedelta(days=1)
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": end.isoformat()},
    )
    assert await _children(api, w.parent) == ["Noor"]
    api.clock.now += timedelta(weeks=9)
    status, _ = await api.call("GET", f"/v1/children/{w.child}", w.parent)
    assert status == 403
    assert await _children(api, w.parent) == []


async def test_the_root_sends_visitors_to_the_app(api: Api) -> None:
    answer = await api.client.get("/", allow_redirects=False)
    assert answer.status == 302
    assert answer.headers["Location"] == "/app/"
    answer = await api.client.get("/app", allow_redirects=False)
    assert answer.headers["Location"] == "/app/"


async def test_the_app_is_served_under_a_strict_policy_and_revalidated(api: Api) -> None:
    answer = await api.client.get("/app/")
    assert answer.status == 200
    assert answer.content_type == "text/html"
    page = await answer.text()
    assert '<script type="module" src="js/main.js"></script>' in page
    assert "<script>" not in page  # no inline script anywhere
    policy = answer.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert "http" not in policy  # no other host
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["X-Frame-Options"] == "DENY"
    tag = answer.headers["ETag"]
    again = await api.client.get("/app/", headers={"If-None-Match": tag})
    assert again.status == 304
    script = await api.client.get("/app/js/main.js")
    assert script.status == 200
    assert script.content_type == "text/javascript"
    assert script.headers["Content-Security-Policy"] == policy


async def test_only_the_apps_own_files_are_served(api: Api) -> None:
    for path in ("/app/nothing.js", "/app/../pyproject.toml", "/app/%2e%2e/vault/cli.py"):
        answer = await api.client.get(path)
        assert answer.status == 404, path


def test_every_file_of_the_app_is_package_data() -> None:
    """A wheel carries what pyproject's package-data names: every file must match."""
    settings = tomllib.loads((STATIC.parents[2] / "pyproject.toml").read_text())
    patterns = settings["tool"]["setuptools"]["package-data"]["vault"]
    files = [
        p.relative_to(STATIC.parent.parent).as_posix() for p in STATIC.rglob("*") if p.is_file()
    ]
    assert len(files) >= 8
    for name in files:
        assert any(fnmatch(name, p) and name.count("/") == p.count("/") for p in patterns), name


def test_every_audited_action_is_said_in_words_in_both_languages() -> None:
    """The access log and the breach question show actions as phrases: one
    without a phrase would reach a parent or the privacy officer as a code
    (``signin.password``)."""
    vocabulary = json.loads(
        (STATIC.parents[2] / "tests" / "api" / "audit_vocabulary.json").read_text()
    )
    actions = {a for a in vocabulary.values() if isinstance(a, str) and "." in a}
    script = (STATIC / "js" / "actions.js").read_text()
    dutch, english = script.split("en: {", 1)
    for words in (dutch, english):
        said = set(re.findall(r"'([a-z_]+\.[a-z_]+)':", words.split("},", 1)[0]))
        assert sorted(actions - said) == []
