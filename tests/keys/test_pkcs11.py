"""The PKCS#11 provider as an operator meets it: its keys on the token, and its errors.

Beyond the provider contract (test_contract.py, which runs on SoftHSM2 too):
what the keys on the token look like, and what a wrong PIN, a missing
module, a missing token, a token without the vault's keys and a PIN in the
configuration file do. Each is one clear line, and nothing starts half-way.
"""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass

from tests.helpers.keystores import KeyStore, SoftHsm, softhsm_store
from tests.helpers.processes import kluis, kluis_env
from tests.servers import free_port
from vault.config import Secret
from vault.keys import KeyringError
from vault.keys.pkcs11 import Pkcs11Provider

pytestmark = pytest.mark.softhsm
NOW = datetime(2026, 12, 1, tzinfo=UTC)


async def test_keys_on_the_token_never_leave_it(softhsm: SoftHsm) -> None:
    store = softhsm_store(softhsm)
    async with store.opened() as provider:
        await provider.create_key("live-2026-12", NOW)
    lib = pkcs11.lib(softhsm.module)
    token = lib.get_token(token_label=softhsm.token)
    prefix = store.keyring.pkcs11_label_prefix
    with token.open(user_pin=softhsm.pin) as session:
        keys = {
            str(obj[Attribute.LABEL]): obj
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
            if str(obj[Attribute.LABEL]).startswith(prefix)
        }
        assert set(keys) == {f"{prefix}live-2026-12", f"{prefix}mac:audit"}
        for key in keys.values():
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.TOKEN] is True
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                key[Attribute.VALUE]
        assert keys[f"{prefix}live-2026-12"][Attribute.VALUE_LEN] == 32
        assert keys[f"{prefix}live-2026-12"][Attribute.WRAP] is False


async def test_a_wrong_pin_a_missing_module_or_token_is_one_clear_error(
    softhsm: SoftHsm,
) -> None:
    with pytest.raises(KeyringError, match="Wrong PIN"):
        await Pkcs11Provider.open(softhsm.module, softhsm.token, "not-the-pin")
    with pytest.raises(KeyringError, match=r"No PKCS#11 module at /nowhere/libp11\.so"):
        await Pkcs11Provider.open("/nowhere/libp11.so", softhsm.token, softhsm.pin)
    with pytest.raises(KeyringError, match="no token labelled 'absent'"):
        await Pkcs11Provider.open(softhsm.module, "absent", softhsm.pin)
    with pytest.raises(KeyringError, match="No PIN"):
        await Pkcs11Provider.open(softhsm.module, softhsm.token, "")


def _nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_commands_refuse_a_bad_token_setup_before_doing_anything(
    softhsm: SoftHsm, tmp_path: Path
) -> None:
    store = softhsm_store(softhsm)
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"), **store.env)
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    for change, message in [
        ({"KLUIS_KEYRING_PKCS11_PIN": "0000-wrong"}, "Wrong PIN"),
        ({"KLUIS_KEYRING_PKCS11_MODULE": "/nowhere/lib.so"}, "No PKCS#11 module"),
        ({"KLUIS_KEYRING_PKCS11_TOKEN_LABEL": "absent"}, "no token labelled"),
        # A token without this vault's keys (another prefix: nothing there).
        ({"KLUIS_KEYRING_PKCS11_LABEL_PREFIX": "elsewhere:"}, "no 'audit' MAC key"),
    ]:
        port = free_port()
        status, out, err = await kluis({**env, **change}, "serve", "--port", str(port))
        assert status == 1, (change, out, err)
        assert message in err, err
        assert "Traceback" not in err
        assert store.keyring.pkcs11_pin.reveal() not in err + out
        assert _nothing_listens(port)
        status, _, err = await kluis({**env, **change}, "keys", "status")
        assert status == 1
        assert message in err
    status, _, err = await kluis(env, "keys", "status")  # the right setup still works
    assert status == 0, err


async def test_the_pin_is_never_read_from_the_configuration_file(tmp_path: Path) -> None:
    config = tmp_path / "kluis.toml"
    config.write_text('[keyring]\nbackend = "pkcs11"\npkcs11_pin = "1234"\n')
    status, _, err = await kluis(
        kluis_env(KLUIS_CONFIG=str(config), KLUIS_DATA_DIR=str(tmp_path)), "keys", "status"
    )
    assert status == 2
    assert "pkcs11_pin in clear" in err
    assert "KLUIS_KEYRING_PKCS11_PIN" in err
    assert "1234" not in err


async def test_a_pin_from_a_file(softhsm: SoftHsm, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.pin + "\n")
    store = softhsm_store(softhsm)
    keyring = dataclasses.replace(
        store.keyring, pkcs11_pin=Secret(""), pkcs11_pin_file=str(pin_file)
    )
    async with KeyStore("pkcs11", keyring, softhsm).opened() as provider:
        assert (await provider.create_key("live-2026-12", NOW)).name == "live-2026-12"
