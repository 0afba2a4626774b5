"""Checking the chain: every event, every checkpoint, the head.

Finds an edited event (its content no longer gives its hash), a removed one
(a gap in the numbers, or the next event's ``prev`` no longer matching), one
inserted or moved (a ``prev`` that does not match the event before it), a
rewritten stretch whose hashes were recomputed (the signed checkpoints and
head no longer match), and a cut-off tail (the signed head or a checkpoint
lies beyond the last event). Each problem names the sequence number where it
shows. The events are streamed, so memory stays flat however long the log.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit.events import GENESIS, hash_of, head_message
from vault.audit.log import Check
from vault.db.schema import audit_checkpoints, audit_events, audit_head, audit_subjects

MAX_PROBLEMS = 100


@dataclasses.dataclass(frozen=True)
class Problem:
    seq: int
    kind: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "problem": self.kind, "message": self.message}


@dataclasses.dataclass
class Verification:
    ok: bool = True
    events: int = 0
    head: str = GENESIS
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def add(self, seq: int, kind: str, message: str) -> None:
        self.ok = False
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, kind, message))

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "problems": [p.as_json() for p in self.problems],
        }


async def _signed(check: Check, seq: int, digest: str, signature: str | None) -> bool:
    if not signature:
        return False
    try:
        tag = bytes.fromhex(signature)
    except ValueError:
        return False
    return check(head_message(seq, digest), tag)


async def verify(engine: AsyncEngine, check: Check, *, partition: int = 5000) -> Verification:
    """Check the whole chain; ``check`` is the key provider's audit MAC check."""
    result = Verification()
    async with engine.connect() as conn:
        head = (await conn.execute(select(audit_head).where(audit_head.c.id == 1))).one_or_none()
        checkpoints = {
            int(row.seq): row
            for row in (
                await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
            ).all()
        }
        expected, last, subjects = 1, GENESIS, 0
        stream = await conn.stream(select(audit_events).order_by(audit_events.c.seq))
        async for rows in stream.partitions(partition):
            for row in rows:
                values = row._asdict()
                seq = int(values["seq"])
                if seq != expected:
                    result.add(
                        expected,
                        "missing",
                        f"events {expected}–{seq - 1} are missing (removed)",
                    )
                elif values["prev"] != last:
                    result.add(
                        seq,
                        "broken_link",
                        f"event {seq} does not follow event {seq - 1} "
                        "(an event before it was removed, inserted, moved or edited)",
                    )
                if hash_of(values) != values["hash"]:
                    result.add(seq, "edited", f"event {seq} was changed after it was written")
                point = checkpoints.get(seq)
                if point is not None and point.hash != values["hash"]:
                    result.add(
                        seq,
                        "checkpoint_mismatch",
                        f"the chain up to event {seq} is not the one the checkpoint signed",
                    )
                result.events += 1
                subjects += len(json.loads(values["children"]))
                expected, last = seq + 1, str(values["hash"])
        indexed = int(await conn.scalar(select(func.count()).select_from(audit_subjects)) or 0)
    if indexed != subjects:
        # The index behind the access logs is not under the hash; its size is checked.
        result.add(
            0,
            "index_mismatch",
            f"the access-log index holds {indexed} rows where the events name {subjects}",
        )
    result.head = last
    final = expected - 1
    for seq, point in checkpoints.items():
        if not await _signed(check, seq, point.hash, point.mac):
            result.add(seq, "forged_checkpoint", f"the checkpoint at {seq} has a bad signature")
        elif seq > final:
            result.add(seq, "tail_cut", f"events after {final} up to at least {seq} were removed")
    if head is None:
        result.add(0, "head_missing", "the chain's head row is gone")
        return result
    head_seq = int(head.seq)
    if head_seq == 0 and head.mac is None:
        if final:
            result.add(1, "head_unsigned", "events exist but the head was never signed")
        return result
    if not await _signed(check, head_seq, head.hash, head.mac):
        result.add(head_seq, "forged_head", "the chain's head has a bad signature")
    elif head_seq > final:
        result.add(final + 1, "tail_cut", f"events {final + 1}–{head_seq} were removed")
    elif head_seq < final:
        result.add(head_seq + 1, "beyond_head", f"events {head_seq + 1}–{final} were added")
    elif head.hash != last:
        result.add(head_seq, "head_mismatch", "the last events are not the ones the head signed")
    return result
