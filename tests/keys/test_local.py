"""The local keyring: one file, shared by the processes of one host.

Beyond the provider contract (test_contract.py): the file on disk, its
lock, the merge that never resurrects a destroyed key nor drops one it did
not know, the cost of use, and what a damaged or locked file does.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers.keystores import local_store
from vault.keys import EpochDestroyed, KeyringError
from vault.keys.local import LocalKeyring

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LATER = datetime(2027, 12, 1, tzinfo=UTC)

pytestmark = pytest.mark.localkeyring


def key_of(path: Path, name: str) -> str | None:
    return json.loads(path.read_text())["body"]["keys"][name]["key"]


async def test_the_file_is_private_and_holds_no_key_after_destruction(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring, created = await LocalKeyring.open_or_create(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await ring.create_key("shred-2027-11", NOW)
    raw = key_of(path, "shred-2027-11")
    assert raw is not None
    assert base64.b64decode(raw).hex() not in repr(ring)
    await ring.destroy_key("shred-2027-11", LATER)
    assert raw not in path.read_text()
    reopened = await LocalKeyring.open(path)
    [info] = await reopened.list_keys()
    assert info.destroyed_at == LATER
    _, created = await LocalKeyring.open_or_create(path)
    assert not created  # opened, not replaced


async def test_a_process_with_an_old_copy_never_brings_a_destroyed_key_back(
    tmp_path: Path,
) -> None:
    """The cron job destroys an epoch; the server still holds the key in memory."""
    path = tmp_path / "keyring.json"
    server, _ = await LocalKeyring.open_or_create(path)
    await server.create_key("shred-2027-11", NOW)
    wrapped = await server.wrap("shred-2027-11", b"k" * 32, b"ctx")
    cron = await LocalKeyring.open(path)
    assert await cron.destroy_key("shred-2027-11", LATER)
    # The server's next change rewrites the file from what it knows, merged.
    await server.create_key("live-2027-12", LATER)
    assert key_of(path, "shred-2027-11") is None
    with pytest.raises(EpochDestroyed):
        await server.unwrap("shred-2027-11", wrapped, b"ctx")
    # Even a copy of the file from before the destruction put back by hand
    # loses to a process that knows the tombstone: its next change restores it.
    old = json.loads(path.read_text())
    old["body"]["keys"]["shred-2027-11"] = {
        "key": base64.b64encode(b"x" * 32).decode(),
        "created_at": "2026-11-21T10:00:00Z",
        "destroyed_at": None,
    }
    path.write_text(json.dumps(old))
    await server.create_key("live-2028-01", LATER)
    assert key_of(path, "shred-2027-11") is None


async def test_a_process_that_did_not_know_a_key_never_drops_it(tmp_path: Path) -> None:
    """kluis keys rotate makes this month's epoch; the server rewrites the file after."""
    path = tmp_path / "keyring.json"
    server, _ = await LocalKeyring.open_or_create(path)
    await server.create_key("live-2026-11", NOW)
    cron = await LocalKeyring.open(path)
    await cron.create_key("live-2026-12", NOW)
    wrapped = await cron.wrap("live-2026-12", b"d" * 32, b"ctx")
    await server.create_key("shred-2027-11", NOW)  # the server's own change, after
    after_restart = await LocalKeyring.open(path)
    assert await after_restart.unwrap("live-2026-12", wrapped, b"ctx") == b"d" * 32
    assert {k.name for k in await after_restart.list_keys()} == {
        "live-2026-11",
        "live-2026-12",
        "shred-2027-11",
    }


async def test_many_processes_creating_at_once_agree_on_one_key(tmp_path: Path) -> None:
    store = local_store(tmp_path)
    await (await store.open()).close()
    script = (
        "import asyncio, sys\n"
        "from datetime import UTC, datetime\n"
        "from pathlib import Path\n"
        "from vault.keys.local import LocalKeyring\n"
        "async def main():\n"
        "    ring = await LocalKeyring.open(Path(sys.argv[1]))\n"
        "    for i in range(10):\n"
        "        await ring.create_key(f'shred-2030-{i + 1:02d}', datetime.now(UTC))\n"
        "        await ring.create_key(f'live-p{sys.argv[2]}-{i}', datetime.now(UTC))\n"
        "    w = await ring.wrap('shred-2030-01', b'm' * 32, b'ctx')\n"
        "    print(w.hex())\n"
        "asyncio.run(main())\n"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, store.keyring.path, str(n), stdout=subprocess.PIPE
        )
        for n in range(6)
    ]
    outputs = [(await proc.communicate())[0].decode().strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    ring = await LocalKeyring.open(Path(store.keyring.path))
    names = {k.name for k in await ring.list_keys()}
    assert {f"live-p{n}-{i}" for n in range(6) for i in range(10)} <= names  # none lost
    for wrapped in outputs:  # every process wrapped under the one shred-2030-01
        assert await ring.unwrap("shred-2030-01", bytes.fromhex(wrapped), b"ctx") == b"m" * 32


async def test_use_costs_a_stat_and_reads_the_file_only_after_a_change(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring, _ = await LocalKeyring.open_or_create(path)
    await ring.create_key("live-2026-11", NOW)
    wrapped = await ring.wrap("live-2026-11", b"k" * 32, b"ctx")
    reads = ring.reads
    for _ in range(200):
        await ring.unwrap("live-2026-11", wrapped, b"ctx")
    assert ring.reads == reads
    other = await LocalKeyring.open(path)
    await other.create_key("live-2026-12", NOW)
    await ring.unwrap("live-2026-11", wrapped, b"ctx")
    assert ring.reads == reads + 1  # the change was seen, once


async def test_a_lock_that_cannot_be_taken_is_a_clear_error_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keyring.json"
    ring, _ = await LocalKeyring.open_or_create(path)
    await ring.create_key("live-2026-11", NOW)
    before = path.read_bytes()
    holder = os.open(ring.lock_path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        quick = await LocalKeyring.open(path, lock_timeout=0.3)
        with pytest.raises(KeyringError, match=r"could not be taken within 0.3 s"):
            await quick.create_key("live-2026-12", NOW)
        with pytest.raises(KeyringError, match="could not be taken"):
            await quick.destroy_key("live-2026-11", NOW)
    finally:
        os.close(holder)
    assert path.read_bytes() == before
    # Use needs no lock: wrapping goes on while a writer holds it.
    fcntl.flock(holder := os.open(ring.lock_path, os.O_RDWR), fcntl.LOCK_EX)
    try:
        assert await ring.wrap("live-2026-11", b"k" * 32, b"ctx")
    finally:
        os.close(holder)


async def test_a_damaged_keyring_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="kluis init"):
        await LocalKeyring.open(tmp_path / "absent.json")
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    with pytest.raises(KeyringError, match="not valid JSON"):
        await LocalKeyring.open(damaged)
    with pytest.raises(KeyringError, match="not valid JSON"):
        await LocalKeyring.open_or_create(damaged)
    assert damaged.read_text() == "{not json"
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"format": "something-else"}')
    with pytest.raises(KeyringError, match="not a Kluis keyring"):
        await LocalKeyring.open(foreign)


async def test_a_file_damaged_while_in_use_stops_use_rather_than_guess(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring, _ = await LocalKeyring.open_or_create(path)
    await ring.create_key("live-2026-11", NOW)
    wrapped = await ring.wrap("live-2026-11", b"k" * 32, b"ctx")
    path.write_text("{truncated")
    with pytest.raises(Exception, match="keyring file cannot be used") as caught:
        await ring.unwrap("live-2026-11", wrapped, b"ctx")
    assert caught.value.code == "storage_unavailable"  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="not valid JSON"):
        await ring.create_key("live-2026-12", NOW)
    assert path.read_text() == "{truncated"


async def test_a_file_swapped_for_another_keyrings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring, _ = await LocalKeyring.open_or_create(path)
    await ring.create_key("live-2026-11", NOW)
    other_path = tmp_path / "other.json"
    other, _ = await LocalKeyring.open_or_create(other_path)
    await other.create_key("live-2026-11", NOW)
    os.replace(other_path, path)
    with pytest.raises(Exception, match="replaced by another keyring"):
        await ring.wrap("live-2026-11", b"k" * 32, b"ctx")


async def test_passphrase_sealed_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring, _ = await LocalKeyring.open_or_create(path, "correct horse battery staple")
    await ring.create_key("live-2026-11", NOW)
    wrapped = await ring.wrap("live-2026-11", b"s" * 32, b"ctx")
    text = path.read_text()
    assert "live-2026-11" not in text  # even the names are sealed
    assert json.loads(text)["kdf"]["name"] == "scrypt"
    other = await LocalKeyring.open(path, "correct horse battery staple")
    await other.create_key("live-2026-12", NOW)  # a change elsewhere: re-read, same salt
    assert await ring.unwrap("live-2026-11", wrapped, b"ctx") == b"s" * 32
    assert {k.name for k in await ring.list_keys()} == {"live-2026-11", "live-2026-12"}
    with pytest.raises(KeyringError, match="Wrong keyring passphrase"):
        await LocalKeyring.open(path, "wrong")
    with pytest.raises(KeyringError, match="sealed with a passphrase"):
        await LocalKeyring.open(path)


async def test_a_failed_rewrite_leaves_the_old_file_and_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyring.json"
    ring, _ = await LocalKeyring.open_or_create(path)
    await ring.create_key("live-2026-11", NOW)
    before = path.read_bytes()

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(Exception, match="keyring file cannot be written"):
        await ring.create_key("live-2026-12", NOW)
    with pytest.raises(Exception, match="keyring file cannot be written"):
        await ring.destroy_key("live-2026-11", NOW)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [(k.name, k.destroyed) for k in await ring.list_keys()] == [("live-2026-11", False)]
    assert sorted(os.listdir(tmp_path)) == ["keyring.json", "keyring.json.lock"]


async def test_a_version_1_file_is_read_and_its_secrets_kept_until_moved(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    key = base64.b64encode(b"o" * 32).decode()
    path.write_text(
        json.dumps(
            {
                "format": "kluis-keyring",
                "version": 1,
                "sealed": False,
                "body": {
                    "epochs": {
                        "live-2026-10": {
                            "key": key,
                            "created_at": "2026-10-01T00:00:00Z",
                            "destroyed_at": None,
                        }
                    },
                    "signing": [base64.b64encode(b"s" * 32).decode()],
                    "audit": base64.b64encode(b"a" * 32).decode(),
                },
            }
        )
    )
    ring = await LocalKeyring.open(path)
    assert ring.legacy_signing_secrets() == [b"s" * 32]
    await ring.create_key("live-2026-11", NOW)  # written as version 2, nothing lost
    document = json.loads(path.read_text())
    assert document["version"] == 2
    assert document["body"]["keys"]["live-2026-10"]["key"] == key
    assert document["body"]["macs"]["audit"] == base64.b64encode(b"a" * 32).decode()
    await ring.forget_legacy_signing_secrets()
    assert "legacy_signing" not in json.loads(path.read_text())["body"]
