"""``kluis demo``: fill an empty vault with the sample and say how to try it.

The accounts' passwords are printed here, once, on stdout; nothing else
holds them (the vault keeps only their Argon2id hashes). Progress goes to
stderr, as every command's.

May touch: what :func:`vault.demo.fill.fill` touches; stdout and stderr.
"""

from __future__ import annotations

import sys
import time

from vault.config import Settings
from vault.demo.fill import Filled, fill
from vault.demo.sample import GROUPS, KIDS, LOCATION
from vault.wiring import open_vault


async def demo(settings: Settings) -> int:
    started = time.monotonic()
    async with open_vault(settings) as vault:
        filled = await fill(vault, say=lambda text: print(f"kluis demo: {text}", file=sys.stderr))
    print("\n".join(summary(filled, time.monotonic() - started)))
    return 0


def summary(filled: Filled, seconds: float) -> list[str]:
    groups = " and ".join(GROUPS.values())
    added = filled.added
    lines = [
        f"The vault now holds a sample organisation ({seconds:.1f} s): {LOCATION} with the "
        f"groups {groups}, {len(KIDS)} children, {added.get('photo', 0)} photos, "
        f"{added.get('video', 0)} video, {added.get('diary', 0)} diary entries, "
        f"{added.get('observation', 0)} observation and {added.get('invoice', 0)} invoice.",
    ]
    if filled.no_video:
        lines.append(f"No video: {filled.no_video}.")
    lines += [
        "",
        f"Start the server ('kluis serve') and sign in at {filled.app_url} with one of these "
        "accounts.",
        "The passwords are shown only this once; the vault keeps nothing but their hashes.",
        "",
        f"{'role':<17} {'e-mail':<36} {'password':<19}  what it shows",
    ]
    for account in filled.accounts:
        lines.append(
            f"{account.role:<17} {account.email:<36} {account.password:<19}  {account.shows}"
        )
    return lines
