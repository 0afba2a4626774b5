"""Running the ``kluis`` command as a user would, in an environment with no
``KLUIS_`` variables of the test run's own."""

from __future__ import annotations

import os
import subprocess
import sys

KLUIS = [sys.executable, "-m", "vault"]


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KLUIS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    env.update(extra)
    return env
