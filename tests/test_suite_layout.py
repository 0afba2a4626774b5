"""The suite's own layout: shared code lives in tests/helpers/, so a test
module can be renamed, split or deleted without breaking another one."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _is_test_module(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_module_of_the_suite_imports_a_test_module_or_a_conftest() -> None:
    offenders = sorted(
        f"{path.relative_to(TESTS)} imports {module}"
        for path in TESTS.rglob("*.py")
        for module in _imported_modules(path)
        if _is_test_module(module)
    )
    assert offenders == [], "move what they share into tests/helpers/"


def test_every_file_the_guarantee_table_names_exists() -> None:
    """docs/architecture.md's table of guarantees names the modules that keep
    them and the tests that prove them; a rename must update it."""
    root = TESTS.parent
    text = (root / "docs" / "architecture.md").read_text()
    table = text.split("## Each guarantee", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) >= 10
    named: set[str] = set()
    for row in rows:
        module_dir = ""
        for quoted in row.split("`")[1::2]:
            name = quoted.split(" ")[0]
            if "/" in name:
                module_dir = name.rsplit("/", 1)[0] if name.endswith(".py") else name.rstrip("/")
                named.add(name)
            elif name.endswith(".py"):
                named.add(f"{module_dir}/{name}")  # beside the last path named
    missing = sorted(name for name in named if not (root / name).exists())
    assert len(named) > 40
    assert missing == []
