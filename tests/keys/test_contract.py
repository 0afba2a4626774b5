"""The key provider contract, run on the local keyring and on a SoftHSM2 token.

What every provider must do for the vault's promises to hold: keys are made
inside and never come out, wrapped keys open only under the same name and
associated data, a destroyed name is gone for good and never made again,
MACs verify, and a second process on the same store sees the first's
changes at its next use.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.helpers.keystores import KeyStore
from tests.keys.agent import run_agent
from vault.crypto import IntegrityError
from vault.keys import EpochDestroyed, EpochUnknown, KeyProvider, KeyringError

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LATER = datetime(2027, 12, 1, tzinfo=UTC)


async def test_a_key_is_made_once_and_wraps_with_its_name_and_context(
    provider: KeyProvider,
) -> None:
    info = await provider.create_key("live-2026-11", NOW)
    assert (info.name, info.destroyed) == ("live-2026-11", False)
    again = await provider.create_key("live-2026-11", LATER)
    assert again.created_at == info.created_at  # the same key, not a new one
    wrapped = await provider.wrap("live-2026-11", b"k" * 32, b"context")
    assert b"k" * 32 not in wrapped
    assert len(wrapped) == 1 + 12 + 32 + 16  # the one wrapped-key layout (docs/crypto.md)
    assert await provider.unwrap("live-2026-11", wrapped, b"context") == b"k" * 32
    with pytest.raises(IntegrityError):
        await provider.unwrap("live-2026-11", wrapped, b"other context")
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(IntegrityError):
        await provider.unwrap("live-2026-11", tampered, b"context")
    with pytest.raises(IntegrityError):
        await provider.unwrap("live-2026-11", b"\x02" + wrapped[1:], b"context")


async def test_a_key_wrapped_under_one_name_does_not_open_under_another(
    provider: KeyProvider,
) -> None:
    await provider.create_key("live-2026-11", NOW)
    await provider.create_key("shred-2027-11", NOW)
    wrapped = await provider.wrap("live-2026-11", b"k" * 32, b"ctx")
    with pytest.raises(IntegrityError):
        await provider.unwrap("shred-2027-11", wrapped, b"ctx")
    with pytest.raises(EpochUnknown):
        await provider.unwrap("live-2030-01", wrapped, b"ctx")


async def test_a_destroyed_key_is_gone_for_good_and_on_record(provider: KeyProvider) -> None:
    await provider.create_key("shred-2027-11", NOW)
    wrapped = await provider.wrap("shred-2027-11", b"k" * 32, b"ctx")
    assert await provider.destroy_key("shred-2027-11", LATER) is True
    assert await provider.destroy_key("shred-2027-11", LATER) is False
    with pytest.raises(EpochDestroyed):
        await provider.unwrap("shred-2027-11", wrapped, b"ctx")
    with pytest.raises(EpochDestroyed):
        await provider.wrap("shred-2027-11", b"k" * 32, b"ctx")
    with pytest.raises(EpochDestroyed):
        await provider.create_key("shred-2027-11", LATER)  # the name is never used again
    with pytest.raises(EpochUnknown):
        await provider.destroy_key("never-made", LATER)
    [info] = [k for k in await provider.list_keys() if k.name == "shred-2027-11"]
    assert info.destroyed_at == LATER
    assert info.created_at == NOW


async def test_macs_are_made_inside_and_checked(provider: KeyProvider) -> None:
    tag = provider.mac("audit", b"kluis-audit-v1\n5\nabc")
    assert len(tag) == 32
    assert provider.mac("audit", b"kluis-audit-v1\n5\nabc") == tag
    assert provider.verify_mac("audit", b"kluis-audit-v1\n5\nabc", tag)
    assert not provider.verify_mac("audit", b"kluis-audit-v1\n6\nabc", tag)
    assert not provider.verify_mac("audit", b"kluis-audit-v1\n5\nabc", tag[:-1] + b"\0")
    assert not provider.verify_mac("audit", b"kluis-audit-v1\n5\nabc", b"short")
    await provider.create_mac_key("audit")  # idempotent: the same key
    assert provider.mac("audit", b"kluis-audit-v1\n5\nabc") == tag
    with pytest.raises(KeyringError, match="kluis init"):
        provider.mac("no-such-mac", b"x")


async def test_mac_calls_are_safe_from_several_threads(provider: KeyProvider) -> None:
    messages = [f"message {i}".encode() for i in range(200)]
    tags = await asyncio.gather(*(asyncio.to_thread(provider.mac, "audit", m) for m in messages))
    assert all(provider.verify_mac("audit", m, t) for m, t in zip(messages, tags, strict=True))


async def test_no_method_hands_out_key_bytes(provider: KeyProvider) -> None:
    await provider.create_key("live-2026-11", NOW)
    public = [name for name in dir(provider) if not name.startswith("_")]
    assert sorted(set(public) - {"path", "lock_path", "reads", "kind"}) == sorted(
        {
            "check",
            "close",
            "create_key",
            "create_mac_key",
            "destroy_key",
            "list_keys",
            "mac",
            "open",
            "unwrap",
            "verify_mac",
            "wrap",
        }
        | (
            # usable: whether a master key exists now (a bool, for the opened-key cache).
            {"open_or_create", "legacy_signing_secrets", "forget_legacy_signing_secrets", "usable"}
            if provider.kind == "local"
            else set()
        )
    )
    with pytest.raises(TypeError):
        __import__("pickle").dumps(provider)


async def test_another_process_sees_what_this_one_made_and_the_reverse(
    key_store: KeyStore, provider: KeyProvider
) -> None:
    await provider.create_key("live-2026-11", NOW)
    wrapped = await provider.wrap("live-2026-11", b"l" * 32, b"agent")
    assert run_agent(key_store, "unwrap", "live-2026-11", wrapped.hex()) == "l" * 32
    theirs = bytes.fromhex(str(run_agent(key_store, "wrap", "shred-2028-01")))
    # A name this process never saw is looked up before it is an error.
    assert await provider.unwrap("shred-2028-01", theirs, b"agent") == b"s" * 32
    # The same name made elsewhere is that key, not a second one.
    run_agent(key_store, "create", "live-2026-11")
    assert await provider.unwrap("live-2026-11", wrapped, b"agent") == b"l" * 32


async def test_a_destruction_elsewhere_counts_here_at_the_next_use(
    key_store: KeyStore, provider: KeyProvider
) -> None:
    await provider.create_key("shred-2027-11", NOW)
    wrapped = await provider.wrap("shred-2027-11", b"s" * 32, b"agent")
    assert await provider.unwrap("shred-2027-11", wrapped, b"agent") == b"s" * 32
    assert run_agent(key_store, "destroy", "shred-2027-11") is True
    with pytest.raises(EpochDestroyed):
        await provider.unwrap("shred-2027-11", wrapped, b"agent")
    with pytest.raises(EpochDestroyed):
        await provider.create_key("shred-2027-11", LATER)
    assert ["shred-2027-11", True] in run_agent(key_store, "list", "-")  # type: ignore[operator]
