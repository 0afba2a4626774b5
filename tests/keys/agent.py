"""Another process on the same key store: ``python -m tests.keys.agent ACTION NAME``.

Reads the key store from ``KLUIS_*`` variables, as a ``kluis`` command
would, does one thing, prints its result as JSON and exits: create, destroy,
wrap (creates ``NAME`` and prints the hex of 32 bytes of its first letter
wrapped under it), unwrap, list. A test starts it with :func:`run_agent`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from tests.helpers.keystores import KeyStore
from vault.config import load_settings
from vault.keys import open_provider


def run_agent(store: KeyStore, *args: str) -> object:
    """Run one key operation in another process on the same store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    env.update(store.env, KLUIS_DATA_DIR=os.path.dirname(store.keyring.path or "/tmp/x"))
    result = subprocess.run(
        [sys.executable, "-m", "tests.keys.agent", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


async def main(action: str, name: str, extra: str = "") -> object:
    provider = await open_provider(load_settings(), create=True)
    try:
        now = datetime.now(UTC)
        if action == "create":
            return (await provider.create_key(name, now)).created_at.isoformat()
        if action == "destroy":
            return await provider.destroy_key(name, now)
        if action == "wrap":
            await provider.create_key(name, now)
            return (await provider.wrap(name, name[0].encode() * 32, b"agent")).hex()
        if action == "unwrap":
            return (await provider.unwrap(name, bytes.fromhex(extra), b"agent")).decode()
        if action == "list":
            return [(k.name, k.destroyed) for k in await provider.list_keys()]
        raise SystemExit(f"unknown action {action}")
    finally:
        await provider.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))))
