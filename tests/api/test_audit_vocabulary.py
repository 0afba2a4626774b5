"""The audit vocabulary: what every route's calls are called on the record.

The names are written where the routes are declared (vault/api/routes.py);
this snapshot makes any change to them a visible diff, since the access log
and the breach question show them to people.
"""

from __future__ import annotations

import json
from pathlib import Path

from vault.api import create_app
from vault.api.routes import ACTIONS, AUDITED
from vault.config import Settings

SNAPSHOT = Path(__file__).with_name("audit_vocabulary.json")


def vocabulary() -> dict[str, str]:
    app = create_app(Settings())
    return {f"{method} {path}": action for (method, path), action in sorted(app[ACTIONS].items())}


def test_the_audit_vocabulary_is_the_snapshot() -> None:
    assert vocabulary() == json.loads(SNAPSHOT.read_text()), (
        "the audit vocabulary changed: if that is meant, write the new one with "
        "`python -m tests.api.test_audit_vocabulary`"
    )


def test_every_audited_route_has_a_name_and_no_other_does() -> None:
    app = create_app(Settings())
    for resource in app.router.resources():
        for route in resource:
            key = (route.method, resource.canonical)
            if resource.canonical.startswith(AUDITED):
                assert app[ACTIONS].get(key), key
            else:
                assert key not in app[ACTIONS], key


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(vocabulary(), indent=1) + "\n")
