"""The link signer on its own: 10,000 mutated tokens, none accepted."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta

import pytest

from vault.share.issuing import _signer_for
from vault.share.links import Claims, LinkExpired, LinkInvalid, LinkSigner

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


def claims(**changes: object) -> Claims:
    values: dict[str, object] = {
        "purpose": "media",
        "subject": "a" * 32,
        "principal": "b" * 32,
        "issued_at": int(NOW.timestamp()),
        "expires_at": int(NOW.timestamp()) + 300,
        "variant": "thumb",
    }
    values.update(changes)
    return Claims(**values)  # type: ignore[arg-type]


def refused(signer: LinkSigner, token: str, purpose: str = "media") -> bool:
    try:
        signer.verify(token, purpose, NOW)
    except (LinkInvalid, LinkExpired):
        return True
    return False


def test_ten_thousand_mutants_are_all_refused() -> None:
    secrets = [os.urandom(32) for _ in range(2)]
    signer = LinkSigner(secrets)
    rng = random.Random(2026)
    tokens = [
        signer.sign(claims(subject=f"{i:032x}", variant=v))
        for i, v in enumerate(["original", "thumb"] * 5)
    ]
    for token in tokens:
        assert signer.verify(token, "media", NOW).subject  # genuine ones verify
    wrong_key = LinkSigner([os.urandom(32)]).sign(claims())
    retired = LinkSigner([os.urandom(32)])
    handover = signer.sign(claims(purpose="handover", reference="r"))
    expired = signer.sign(
        claims(issued_at=int(NOW.timestamp()) - 400, expires_at=int(NOW.timestamp()) - 1)
    )
    future = signer.sign(
        claims(issued_at=int(NOW.timestamp()) + 3600, expires_at=int(NOW.timestamp()) + 4000)
    )
    backwards = signer.sign(claims(expires_at=int(NOW.timestamp()) - 10**6))
    mutants: set[str] = {wrong_key, retired.sign(claims()), handover, expired, future, backwards}
    while len(mutants) < 10_000:
        token = rng.choice(tokens)
        kind = rng.randrange(5)
        if kind == 0:  # one character changed
            i = rng.randrange(len(token))
            mutant = token[:i] + rng.choice(ALPHABET.replace(token[i], "")) + token[i + 1 :]
        elif kind == 1:  # truncated
            mutant = token[: rng.randrange(len(token))]
        elif kind == 2:  # extended
            mutant = token + "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 5)))
        elif kind == 3:  # payload of one link, signature of another
            a, b = rng.sample(tokens, 2)
            mutant = a.rsplit(".", 1)[0] + "." + b.rsplit(".", 1)[1]
        else:  # two characters swapped
            i = rng.randrange(len(token) - 1)
            mutant = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
        if mutant not in tokens:
            mutants.add(mutant)
    accepted = [m for m in mutants if not refused(signer, m)]
    assert accepted == []
    assert refused(signer, tokens[0], purpose="handover")  # another purpose's salt


def test_every_twin_of_the_last_base64_character_is_refused() -> None:
    signer = LinkSigner([os.urandom(32)])
    token = signer.sign(claims())
    for char in ALPHABET.replace(".", ""):
        if char != token[-1]:
            assert refused(signer, token[:-1] + char)


def test_expired_and_future_links_say_which() -> None:
    signer = LinkSigner([os.urandom(32)])
    with pytest.raises(LinkExpired) as info:
        signer.verify(signer.sign(claims(expires_at=int(NOW.timestamp()))), "media", NOW)
    assert info.value.expired_at == NOW
    with pytest.raises(LinkInvalid):
        signer.verify(
            signer.sign(claims(issued_at=int((NOW + timedelta(minutes=5)).timestamp()))),
            "media",
            NOW,
        )
    # Within the tolerated skew between instances: fine.
    signer.verify(
        signer.sign(claims(issued_at=int((NOW + timedelta(seconds=30)).timestamp()))), "media", NOW
    )


def test_rotation_keeps_old_links_verifying() -> None:
    old, new = os.urandom(32), os.urandom(32)
    token = LinkSigner([old]).sign(claims())
    assert LinkSigner([old, new]).verify(token, "media", NOW).subject == "a" * 32
    assert refused(LinkSigner([new]), token)


def test_a_link_verified_before_is_still_checked_for_time_at_every_use() -> None:
    signer = LinkSigner([os.urandom(32)])
    token = signer.sign(claims())
    assert signer.verify(token, "media", NOW).subject == "a" * 32
    assert signer.verify(token, "media", NOW).subject == "a" * 32  # from what was kept
    with pytest.raises(LinkExpired):
        signer.verify(token, "media", NOW + timedelta(seconds=300))
    with pytest.raises(LinkInvalid):  # kept, but not a handover link
        signer.verify(token, "handover", NOW)
    twin = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert refused(signer, twin)


def test_a_retired_secret_stops_links_its_signer_had_verified() -> None:
    old, new = os.urandom(32), os.urandom(32)
    token = LinkSigner([old]).sign(claims())
    assert _signer_for((old, new)).verify(token, "media", NOW).subject == "a" * 32
    assert refused(_signer_for((new,)), token)
