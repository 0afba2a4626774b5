"""The published contract tested as a client uses it: schemathesis against
the document a served vault publishes, with real ids and tokens of a seeded
organisation so that calls reach the logic (not just the first 404).

Every operation of ``/openapi.json`` gets positive and negative examples
(bounded: ``EXAMPLES`` each). Each answer must be no 5xx, a status the
document lists for that operation, and match the documented schema,
content type and headers. The figures (operations, examples, answers by
status class) are printed at the end.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.served import Served, served_vault
from vault.api.resources import DB, KEYRING
from vault.audit.verify import verify
from vault.keys.provider import audit_check

#: Examples per operation and generation mode; keeps the run to about a minute.
EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_vault(tmp_path_factory.mktemp("served") / "data") as vault:
        yield vault


def _plan(method: str, path: str, s: Served) -> tuple[dict[str, str], str | None]:
    """The path parameters and token a real client would send to this operation."""
    w = s.w
    if not path.startswith("/v1/"):
        token = {"/l/": s.link, "/h/": s.handover, "/x/": s.export}.get(path[:3])
        return ({"token": token.rsplit("/", 1)[-1]} if token else {}), None
    people = {"id": s.victim}
    table: dict[tuple[str, str], tuple[dict[str, str], str]] = {
        ("GET", "/v1/children/{id}"): ({"id": w.child}, w.parent),
        ("PUT", "/v1/children/{id}/placement"): ({"id": w.other_group_child}, s.admin),
        ("POST", "/v1/children/{id}/guardians"): ({"id": w.other_group_child}, s.admin),
        ("PUT", "/v1/children/{id}/mentor"): ({"id": w.other_group_child}, s.admin),
        ("PUT", "/v1/children/{id}/consents/{type}"): (
            {"id": w.other_group_child},
            w.stranger_parent,
        ),
        ("GET", "/v1/children/{id}/consents"): ({"id": w.child}, w.parent),
        ("POST", "/v1/children/{id}/items"): ({"id": w.child}, w.staff),
        ("GET", "/v1/children/{id}/items"): ({"id": w.child}, w.parent),
        ("GET", "/v1/items/{id}"): ({"id": s.photo}, w.parent),
        ("DELETE", "/v1/items/{id}"): ({"id": s.spare_photo}, w.staff),
        ("PATCH", "/v1/items/{id}"): ({"id": s.photo}, w.staff),
        ("PUT", "/v1/items/{id}/file"): ({"id": s.photo}, w.staff),
        ("POST", "/v1/items/{id}/links"): ({"id": s.photo}, w.parent),
        ("POST", "/v1/links"): ({}, w.parent),
        ("POST", "/v1/items/{id}/handovers"): ({"id": s.observation}, w.staff),
        ("POST", "/v1/items/{id}/publications"): ({"id": s.photo}, w.manager),
        ("POST", "/v1/children/{id}/exports"): ({"id": w.child}, w.parent),
        ("GET", "/v1/children/{id}/retention"): ({"id": w.child}, w.parent),
        ("POST", "/v1/children/{id}/holds"): ({"id": w.child}, w.officer),
        ("DELETE", "/v1/holds/{id}"): ({"id": s.hold}, w.officer),
        ("POST", "/v1/children/{id}/erasure"): ({"id": w.other_group_child}, w.stranger_parent),
        ("POST", "/v1/retention/run"): ({}, w.officer),
        ("GET", "/v1/children/{id}/certificates"): ({"id": w.child}, w.officer),
        ("PATCH", "/v1/children/{id}"): ({"id": w.other_group_child}, s.admin),
        ("PATCH", "/v1/children/{id}/guardians/{person_id}"): (
            {"id": w.child, "person_id": w.parent_id},
            s.admin,
        ),
        ("DELETE", "/v1/children/{id}/guardians/{person_id}"): (
            {"id": w.child, "person_id": w.parent_id},
            s.admin,
        ),
        ("DELETE", "/v1/groups/{id}/staff/{person_id}"): (
            {"id": w.group, "person_id": s.spare_staff},
            s.admin,
        ),
        ("POST", "/v1/requests"): ({}, w.parent),
        ("GET", "/v1/requests"): ({}, w.officer),
        ("POST", "/v1/requests/{id}/answer"): ({"id": s.request}, w.officer),
        ("POST", "/v1/children/{id}/restriction"): ({"id": w.other_group_child}, w.officer),
        ("DELETE", "/v1/children/{id}/restriction"): ({"id": w.other_group_child}, w.officer),
        ("GET", "/v1/children/{id}/access-log"): ({"id": w.child}, w.parent),
        ("GET", "/v1/children/{id}/report"): ({"id": w.child}, w.parent),
        ("GET", "/v1/audit/verify"): ({}, w.officer),
        ("GET", "/v1/audit/touched"): ({}, w.officer),
        ("GET", "/v1/me"): ({}, w.parent),
        ("POST", "/v1/locations/{id}/managers"): ({"id": s.location}, s.admin),
        ("POST", "/v1/groups/{id}/staff"): ({"id": w.group}, s.admin),
        # Signing out stops the token it comes with: not the admin's of the whole run.
        ("DELETE", "/v1/sessions/current"): ({}, s.spare_token),
    }
    if (method, path) in table:
        return table[(method, path)]
    if path.startswith("/v1/people/{id}"):
        return people, s.admin
    return {}, s.admin


def _real_ids(body: Any, s: Served) -> Any:
    """Ids in a generated body replaced by real ones, so the call gets past 404."""
    if isinstance(body, dict):
        real = {
            "group_id": s.w.group,
            "location_id": s.location,
            "person_id": s.spare_staff,
            "item_id": s.photo,
            "child_id": s.w.child,
        }
        out = {
            k: real[k] if k in real and isinstance(v, str) else _real_ids(v, s)
            for k, v in body.items()
        }
        if "tagged_children" in out and isinstance(out["tagged_children"], list):
            out["tagged_children"] = []
        if "photo_ids" in out and isinstance(out["photo_ids"], list):
            out["photo_ids"] = []
        return out
    if isinstance(body, list):
        return [_real_ids(v, s) for v in body]
    return body


class Run:
    """What a run saw: examples, answers by status class, failed checks."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.session = requests.Session()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.examples = 0
        self.failures: list[str] = []

    def exercise(self, operation: Any, mode: GenerationMode) -> None:
        method, path = operation.method.upper(), operation.path
        path_parameters, token = _plan(method, path, self.served)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        strategy = operation.as_strategy(
            generation_mode=mode, path_parameters=path_parameters or None
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            if mode is GenerationMode.POSITIVE:
                case.body = _real_ids(case.body, self.served)
            if path == "/v1/retention/run":
                if not isinstance(case.body, dict):
                    return
                case.body["dry_run"] = True  # never destroy this run's keys
            response = case.call(base_url=self.served.base, session=self.session, headers=headers)
            self.examples += 1
            self.statuses[f"{response.status_code // 100}xx"] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # one report for the whole run
                self.failures.append(f"{method} {path} [{mode.value}]: {exc}"[:2500])

        try:
            run()
        except Unsatisfiable:
            # Nothing of this operation can be made invalid (no parameters, no
            # body): there are no negative examples to send.
            assert mode is GenerationMode.NEGATIVE, (method, path)


def test_the_served_document_holds_for_every_operation(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    document = requests.get(served.base + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    seen = Run(served)
    operations = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            seen.exercise(result.ok(), mode)  # type: ignore[union-attr]  # an Err fails the test here
    elapsed = time.monotonic() - started
    statuses = seen.statuses
    with capsys.disabled():
        print(
            f"\nschemathesis: {operations} operations, {seen.examples} examples in "
            f"{elapsed:.0f} s; answers {dict(sorted(statuses.items()))}; "
            f"{len(seen.failures)} failures"
        )
    assert not seen.failures, "\n\n".join(seen.failures[:12])
    assert statuses["5xx"] == 0
    # Calls reached the logic: a good share of answers were not refusals.
    assert statuses["2xx"] > seen.examples // 5, statuses
    # And the audit chain is whole after all of that.
    check = served.run(verify(served.app[DB], audit_check(served.app[KEYRING])))
    assert check.ok, check.as_json()


def test_the_document_is_written_down(served: Served, tmp_path: Path) -> None:
    """The document parses as OpenAPI 3.1 for schemathesis, and is stable JSON."""
    text = requests.get(served.base + "/openapi.json", timeout=30).text
    assert json.loads(text)["openapi"] == "3.1.0"
