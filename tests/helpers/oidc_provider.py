"""A real OpenID Provider for the tests: ``oidc-provider`` (npm, pinned in
tests/oidc) run by Node on a free loopback port, with static clients and test
accounts, and a login and consent form that a test submits as a browser
would (tests/helpers/browser.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.servers import ServerUnavailable, free_port

HERE = Path(__file__).resolve().parent.parent / "oidc"


@dataclasses.dataclass(frozen=True)
class Account:
    login: str
    password: str
    sub: str
    email: str
    email_verified: bool = True


class OidcProvider:
    def __init__(
        self,
        redirect_uri: str,
        accounts: list[Account],
        clients: dict[str, str],
        code_ttl: int = 60,
    ) -> None:
        self.dir = Path(os.environ.get("VAULT_TEST_OIDC_DIR") or HERE)
        if not (self.dir / "node_modules" / "oidc-provider").is_dir():
            raise ServerUnavailable(
                f"oidc-provider is not installed in {self.dir}; run scripts/ensure-oidc-provider"
            )
        node = shutil.which("node")
        if node is None:
            raise ServerUnavailable("no node; run scripts/ensure-oidc-provider")
        self.node = node
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.accounts = accounts
        self.config = {
            "issuer": self.issuer,
            "port": self.port,
            "code_ttl": code_ttl,
            "clients": [
                {"client_id": cid, "client_secret": secret, "redirect_uris": [redirect_uri]}
                for cid, secret in clients.items()
            ],
            "accounts": [dataclasses.asdict(a) for a in accounts],
        }
        self.log = Path(tempfile.mkdtemp(prefix="kluis-oidc-")) / "provider.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 30.0) -> OidcProvider:
        env = {**os.environ, "KLUIS_TEST_OIDC": json.dumps(self.config), "NODE_ENV": "test"}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [self.node, str(self.dir / "provider.mjs")],
                cwd=self.dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + within
        url = f"{self.issuer}/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"oidc-provider exited:\n{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerUnavailable(f"oidc-provider was not ready:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
