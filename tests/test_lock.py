"""The lock files install what pyproject.toml asks for: every dependency
pinned once, at a version its range admits, with hashes. A dependency added
or a range moved without running scripts/lock fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(lock: str) -> dict[str, Version]:
    found: dict[str, Version] = {}
    text = (ROOT / lock).read_text()
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            assert name not in found, f"{name} pinned twice in {lock}"
            found[name] = Version(match.group(2))
    # Every pin carries its hashes, so pip installs it with --require-hashes.
    assert text.count("==") <= text.count("--hash=sha256:")
    return found


@pytest.mark.parametrize(
    ("lock", "groups"),
    [("requirements.lock", ()), ("requirements-test.lock", ("test",))],
)
def test_the_lock_pins_every_dependency_within_its_range(
    lock: str, groups: tuple[str, ...]
) -> None:
    wanted = [Requirement(text) for text in PROJECT["dependencies"]]
    for group in groups:
        wanted += [Requirement(text) for text in PROJECT["optional-dependencies"][group]]
    pinned = pins(lock)
    outside = sorted(
        f"{req} (locked: {pinned.get(canonicalize_name(req.name), 'missing')})"
        for req in wanted
        if canonicalize_name(req.name) not in pinned
        or not req.specifier.contains(pinned[canonicalize_name(req.name)], prereleases=True)
    )
    assert outside == [], "run scripts/lock and commit the lock files"


def test_every_runtime_dependency_has_an_upper_bound() -> None:
    """A fresh install outside the lock (pip install .) cannot jump a major
    version under us."""
    unbounded = sorted(
        text
        for text in PROJECT["dependencies"]
        if not any(spec.operator in ("<", "<=", "==", "~=") for spec in Requirement(text).specifier)
    )
    assert unbounded == []
