"""The local keyring: master keys per epoch, kept in one file."""

from __future__ import annotations

import base64
import json
import os
import pickle
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vault.config import Secret
from vault.crypto import IntegrityError, LocalKeyring
from vault.crypto.keyring import EpochDestroyed, EpochUnknown, KeyringError

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


async def test_create_wrap_unwrap_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = await LocalKeyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = await ring.create_epoch("live-2026-11", NOW)
    assert info.created_at == NOW
    assert (await ring.create_epoch("live-2026-11", NOW)).created_at == NOW  # idempotent
    wrapped = await ring.wrap("live-2026-11", b"k" * 32, b"context")
    reopened = await LocalKeyring.open(path)
    assert await reopened.unwrap("live-2026-11", wrapped, b"context") == b"k" * 32
    with pytest.raises(IntegrityError):
        await reopened.unwrap("live-2026-11", wrapped, b"other context")
    with pytest.raises(EpochUnknown):
        await reopened.unwrap("live-2026-12", wrapped, b"context")
    with pytest.raises(KeyringError, match="already exists"):
        await LocalKeyring.create(path)


async def test_a_key_wrapped_under_one_epoch_does_not_open_under_another(tmp_path: Path) -> None:
    ring = await LocalKeyring.create(tmp_path / "k.json")
    await ring.create_epoch("live-2026-11", NOW)
    await ring.create_epoch("shred-2027-11", NOW)
    wrapped = await ring.wrap("live-2026-11", b"k" * 32, b"ctx")
    with pytest.raises(IntegrityError):
        await ring.unwrap("shred-2027-11", wrapped, b"ctx")


async def test_destroyed_epoch_is_gone_forever_and_on_record(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = await LocalKeyring.create(path)
    await ring.create_epoch("shred-2027-11", NOW)
    wrapped = await ring.wrap("shred-2027-11", b"k" * 32, b"ctx")
    key_b64 = json.loads(path.read_text())["body"]["epochs"]["shred-2027-11"]["key"]
    later = datetime(2027, 12, 1, tzinfo=UTC)
    assert await ring.destroy_epoch("shred-2027-11", later) is True
    assert await ring.destroy_epoch("shred-2027-11", later) is False
    with pytest.raises(EpochDestroyed):
        await ring.unwrap("shred-2027-11", wrapped, b"ctx")
    with pytest.raises(EpochDestroyed):
        await ring.create_epoch("shred-2027-11", later)  # the name is never reused
    assert key_b64 not in path.read_text()
    reopened = await LocalKeyring.open(path)
    [info] = await reopened.epochs()
    assert info.name == "shred-2027-11"
    assert info.destroyed_at == later
    with pytest.raises(EpochDestroyed):
        await reopened.unwrap("shred-2027-11", wrapped, b"ctx")


async def test_passphrase_sealed_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = await LocalKeyring.create(path, Secret("correct horse battery staple"))
    await ring.create_epoch("live-2026-11", NOW)
    wrapped = await ring.wrap("live-2026-11", b"s" * 32, b"ctx")
    text = path.read_text()
    assert "live-2026-11" not in text  # even the epoch names are sealed
    assert json.loads(text)["kdf"]["name"] == "scrypt"
    reopened = await LocalKeyring.open(path, Secret("correct horse battery staple"))
    assert await reopened.unwrap("live-2026-11", wrapped, b"ctx") == b"s" * 32
    with pytest.raises(KeyringError, match="Wrong keyring passphrase"):
        await LocalKeyring.open(path, Secret("wrong"))
    with pytest.raises(KeyringError, match="sealed with a passphrase"):
        await LocalKeyring.open(path)


async def test_a_failed_rewrite_leaves_the_old_file_and_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyring.json"
    ring = await LocalKeyring.create(path)
    await ring.create_epoch("live-2026-11", NOW)
    before = path.read_bytes()

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(Exception, match="keyring file cannot be written"):
        await ring.create_epoch("live-2026-12", NOW)
    with pytest.raises(Exception, match="keyring file cannot be written"):
        await ring.destroy_epoch("live-2026-11", NOW)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [e.name for e in await ring.epochs()] == ["live-2026-11"]
    assert not (await ring.epochs())[0].destroyed  # the failed destruction was rolled back
    assert os.listdir(tmp_path) == ["keyring.json"]  # no temp file left


async def test_keyring_never_shows_key_material(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = await LocalKeyring.create(path)
    await ring.create_epoch("live-2026-11", NOW)
    raw = base64.b64decode(json.loads(path.read_text())["body"]["epochs"]["live-2026-11"]["key"])
    assert raw.hex() not in repr(ring)
    assert repr(raw) not in repr(ring)
    with pytest.raises(TypeError):
        pickle.dumps(ring)


async def test_missing_or_damaged_keyring(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="kluis init"):
        await LocalKeyring.open(tmp_path / "absent.json")
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    with pytest.raises(KeyringError, match="cannot be read"):
        await LocalKeyring.open(damaged)
