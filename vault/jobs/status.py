"""``kluis jobs status``: what is queued, running and failed, as a table for an operator.

Clear facts only (ids, kinds, states, times, attempts, the vault's reason of
a failure); no content and no names. May touch: the ``jobs`` table (read).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from vault.jobs import queue
from vault.jobs.queue import FAILED, QUEUED, RUNNING, JobRow


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _line(row: JobRow) -> str:
    if row.state == RUNNING:
        when = f"lease until {_at(row.lease_until)} ({row.worker})"
    elif row.state == QUEUED:
        when = f"due {_at(row.run_after)}"
    else:
        when = f"ended {_at(row.finished_at)}"
    line = f"{row.id}  {row.kind:<14} {row.state:<8} item {row.item_id}  attempt {row.attempts}  "
    line += when
    if row.error:
        line += f"\n    {row.error}"
    return line


async def report(engine: AsyncEngine, limit: int = 100) -> str:
    """The counts per state, then the jobs queued, running and failed (oldest first)."""
    counts = await queue.counts(engine)
    lines = ["jobs: " + ", ".join(f"{n} {state}" for state, n in counts.items())]
    for state in (RUNNING, QUEUED, FAILED):
        rows = await queue.listing(engine, [state], limit)
        if rows:
            shown = f"{len(rows)} shown of {counts[state]}" if counts[state] > len(rows) else ""
            lines.append(f"\n{state}{' (' + shown + ')' if shown else ''}:")
            lines.extend(_line(row) for row in rows)
    return "\n".join(lines)
