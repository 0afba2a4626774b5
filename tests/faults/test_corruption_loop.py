"""Random damage to stored blobs, over and over: never a wrong byte, never a hang.

Each iteration damages one stored blob at a random place (a bit flipped in
the header, in a random segment or its tag, in the last segment; the blob cut
at a random length; two blobs swapped; bytes appended), then fetches it whole
and as a random Range, on the local disk and on MinIO. Every answer must be
one of:

* 500 ``integrity_error`` before any byte (the first segment asked for fails);
* a short body that is a prefix of the right bytes, then a closed connection;
* the right bytes, whole (the damage lies outside what was asked for, or in
  bytes that are never read);

within 2 s (never a client left waiting). Then the blob is put back and reads
whole again. Afterwards: every other record whole, the audit chain verifies,
``verify`` (what ``kluis storage verify`` runs) finds nothing and clears the
marks, no error logged but the integrity errors, no traceback.

``--faults-long`` (or ``KLUIS_FAULTS_LONG=1``) makes 300 iterations instead of 12.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.files import PDF
from tests.helpers import damage
from tests.helpers.api import Api
from tests.helpers.faults import rounds
from tests.helpers.items import upload
from tests.helpers.links import link
from tests.helpers.world import world
from vault.api.resources import CLOCK, DB, KEYRING, KEYS, STORE
from vault.audit.verify import verify as verify_chain
from vault.crypto._primitives import TAG_SIZE
from vault.crypto.stream import HEADER_SIZE
from vault.items import damage as damage_log
from vault.items import service
from vault.items.verify import verify as verify_blobs
from vault.keys.provider import audit_check

#: 1.5 MiB and a bit: 25 segments, two pieces of the store's 1 MiB reads.
SIZE = 3 * 512 * 1024 + 777
RECORDS = 4
WITHIN = 2.0
KINDS = ("header", "segment", "last segment", "truncated", "swapped", "appended")


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def fetch(api: Api, path: str, **headers: str) -> tuple[int, bytes, str]:
    """(status, body, ``whole`` | ``closed`` | ``error``), or TimeoutError: a hang."""
    session: aiohttp.ClientSession = api.client.session
    url = str(api.client.make_url(path))

    async def go() -> tuple[int, bytes, str]:
        async with session.get(url, headers=headers) as answer:
            if answer.status >= 400:
                return answer.status, await answer.read(), "error"
            received = bytearray()
            try:
                async for chunk in answer.content.iter_any():
                    received += chunk
            except aiohttp.ClientPayloadError:
                return answer.status, bytes(received), "closed"
            return answer.status, bytes(received), "whole"

    return await asyncio.wait_for(go(), WITHIN)


def judged(answer: tuple[int, bytes, str], right: bytes, ranged: bool) -> str | None:
    """What is wrong with an answer to a damaged blob (None: it is allowed)."""
    status, body, ending = answer
    ok_status = 206 if ranged else 200
    if ending == "error":
        if status == 500 and b'"integrity_error"' in body:
            return None
        return f"error {status} {body[:200]!r}"
    if status != ok_status:
        return f"status {status} ({ending})"
    if ending == "whole":
        return None if body == right else f"whole answer with wrong bytes ({len(body)})"
    return None if right.startswith(body) and len(body) < len(right) else "a wrong short body"


@pytest.mark.slow
async def test_random_damage_never_gives_a_wrong_byte_or_a_hang(
    served: Api, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    api = served
    app = api.client.app
    store = app[STORE]
    w = await world(api)
    chance = random.Random(1818)
    records: list[tuple[str, bytes, str, str]] = []  # (item, plaintext, blob key, link path)
    for n in range(RECORDS):
        data = PDF + chance.randbytes(SIZE - len(PDF))
        status, item = await upload(
            api, w.staff, w.child, {"kind": "observation"}, io.BytesIO(data), f"o{n}.pdf"
        )
        assert status == 201, item
        blob = (await service.blobs_of(app[DB], item["id"]))["original"].blob_key
        records.append((item["id"], data, blob, await link(api, w.parent, item["id"])))
    stored = {blob: await damage.read_blob(store, blob) for _, _, blob, _ in records}

    seen: collections.Counter[str] = collections.Counter()
    violations: list[str] = []
    iterations = rounds(request.config, 12, 300)
    with caplog.at_level(logging.INFO):
        for i in range(iterations):
            kind = KINDS[i % len(KINDS)]
            target = chance.randrange(RECORDS)
            _, data, blob, path = records[target]
            original = stored[blob]
            if kind == "swapped":
                other = records[(target + 1) % RECORDS][2]
                await damage.swap(store, blob, other)
            else:
                damaged = bytearray(original)
                if kind == "header":
                    damaged[chance.randrange(HEADER_SIZE)] ^= 1 << chance.randrange(8)
                elif kind == "segment":
                    segments = (len(original) - HEADER_SIZE) // (damage.SEGMENT + TAG_SIZE)
                    at = damage.segment_offset(
                        chance.randrange(segments), chance.randrange(damage.SEGMENT + TAG_SIZE)
                    )
                    damaged[at] ^= 1 << chance.randrange(8)
                elif kind == "last segment":
                    damaged[-chance.randrange(1, 700)] ^= 1 << chance.randrange(8)
                elif kind == "truncated":
                    del damaged[chance.randrange(len(original)) :]
                else:
                    damaged += chance.randbytes(chance.randrange(1, 5000))
                await store.put(blob, one(bytes(damaged)))
            start = chance.randrange(len(data))
            end = chance.randrange(start, len(data))
            for headers, right in (
                ({}, data),
                ({"Range": f"bytes={start}-{end}"}, data[start : end + 1]),
            ):
                try:
                    answer = await fetch(api, path, **headers)
                except TimeoutError:
                    violations.append(f"{i} {kind} {headers}: no end within {WITHIN} s")
                    continue
                seen[f"{kind}: {answer[2]}"] += 1
                wrong = judged(answer, right, bool(headers))
                if wrong is not None:
                    violations.append(f"{i} {kind} {headers}: {wrong}")
            # Put back: the blob reads whole again (also the swapped partner).
            for _, _, key, _ in records:
                await store.put(key, one(stored[key]))
            again = await fetch(api, path)
            if again != (200, data, "whole"):
                violations.append(f"{i} {kind}: after repair {again[0]} {again[2]}")

    print(f"\n{iterations} damages: {dict(sorted(seen.items()))}; violations: {len(violations)}")
    assert violations == []
    for _, data, _, path in records:
        assert await fetch(api, path) == (200, data, "whole")
    chain = await verify_chain(app[DB], audit_check(app[KEYRING]))
    assert chain.ok, chain.problems
    # Every damaged blob went on record; once repaired, verify clears them all.
    assert await damage_log.damaged(app[DB])
    report = await verify_blobs(app[DB], store, app[KEYS], app[CLOCK]())
    assert (report.damaged, report.missing) == ([], [])
    assert await damage_log.damaged(app[DB]) == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(m.startswith("integrity_error") for m in errors), errors[:5]
    assert not any(r.exc_info for r in caplog.records), "no traceback for a damaged blob"
