"""Key stores for the tests: the local keyring file and real SoftHSM2 tokens.

SoftHSM2 reads its configuration (``SOFTHSM2_CONF``) when its module is
loaded, and does not see tokens made after that, so a test session makes one
token at the start and gives every test its own label prefix on it
(``keyring.pkcs11_label_prefix``): the tests share a token as several vaults
may share an HSM, and never see each other's keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from vault.config import KeyringSettings, Secret, Settings
from vault.keys import KeyProvider, open_provider
from vault.keys.provider import AUDIT_MAC

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "kluis-test"
PIN = "4711-test-pin"


class SoftHsmUnavailable(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class SoftHsm:
    module: str
    conf: Path
    token: str = TOKEN
    pin: str = PIN

    @classmethod
    def start(cls, directory: Path) -> SoftHsm:
        module = os.environ.get("VAULT_TEST_PKCS11_MODULE") or DEFAULT_MODULE
        util = shutil.which("softhsm2-util")
        if util is None or not Path(module).is_file():
            raise SoftHsmUnavailable("SoftHSM2 is not installed; run scripts/ensure-softhsm")
        (directory / "tokens").mkdir(parents=True)
        conf = directory / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {directory / 'tokens'}\n"
            "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
        )
        os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is loaded anywhere
        result = subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                TOKEN,
                "--pin",
                PIN,
                "--so-pin",
                "so-" + PIN,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SoftHsmUnavailable(f"softhsm2-util failed: {result.stderr}")
        return cls(module, conf)

    def make_token(self, label: str) -> None:
        """Another token (seen only by processes started after this)."""
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                "so-" + PIN,
            ],
            capture_output=True,
            check=True,
        )


@dataclasses.dataclass(frozen=True)
class KeyStore:
    """One key store a test (and the processes it starts) use."""

    kind: str  # "local" or "pkcs11"
    keyring: KeyringSettings
    hsm: SoftHsm | None = None

    @property
    def env(self) -> dict[str, str]:
        """The ``KLUIS_KEYRING_*`` variables a ``kluis`` process needs for it."""
        if self.hsm is None:
            return {"KLUIS_KEYRING_PATH": self.keyring.path}
        return {
            "KLUIS_KEYRING_BACKEND": "pkcs11",
            "KLUIS_KEYRING_PKCS11_MODULE": self.keyring.pkcs11_module,
            "KLUIS_KEYRING_PKCS11_TOKEN_LABEL": self.keyring.pkcs11_token_label,
            "KLUIS_KEYRING_PKCS11_PIN": self.keyring.pkcs11_pin.reveal(),
            "KLUIS_KEYRING_PKCS11_LABEL_PREFIX": self.keyring.pkcs11_label_prefix,
            "SOFTHSM2_CONF": str(self.hsm.conf),
        }

    def settings(self, data_dir: Path, **values: object) -> Settings:
        return Settings(data_dir=data_dir, keyring=self.keyring, **values)  # type: ignore[arg-type]

    async def open(self) -> KeyProvider:
        """A provider on this store, created if need be, with its audit key."""
        data_dir = Path(self.keyring.path).parent if self.keyring.path else Path("data")
        provider = await open_provider(self.settings(data_dir), create=True)
        await provider.create_mac_key(AUDIT_MAC)
        return provider

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[KeyProvider]:
        provider = await self.open()
        try:
            yield provider
        finally:
            await provider.close()


def local_store(directory: Path) -> KeyStore:
    return KeyStore("local", KeyringSettings(path=str(directory / "keyring.json")))


def softhsm_store(hsm: SoftHsm) -> KeyStore:
    return KeyStore(
        "pkcs11",
        KeyringSettings(
            backend="pkcs11",
            pkcs11_module=hsm.module,
            pkcs11_token_label=hsm.token,
            pkcs11_pin=Secret(hsm.pin),
            pkcs11_label_prefix=f"t{secrets.token_hex(5)}:",
        ),
        hsm,
    )
