"""The job workers of one ``kluis serve`` process, and the queue's depth on ``/metrics``.

``kluis serve --jobs N`` (default 1; 0 on instances that only answer
requests) runs N workers (:class:`vault.jobs.runner.JobRunner`) beside the
API; with ``--workers`` they run in the first worker process. The runner is
always made (with no slots when N is 0), so an upload can wake it and a
test can :meth:`~vault.jobs.runner.JobRunner.drain` it.

May touch: the job queue (through the runner) and the app's metrics.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from vault.api.metrics import METRICS
from vault.api.resources import CLOCK, DB, KEYS, SETTINGS, STORE
from vault.errors import StorageUnavailable
from vault.items.variants import Workshop
from vault.jobs import queue
from vault.jobs.runner import JobRunner

log = logging.getLogger(__name__)

RUNNER = web.AppKey("job_runner", JobRunner)
#: How many job workers this process runs.
SLOTS = web.AppKey("job_slots", int)


def wake(app: web.Application) -> None:
    """A job was queued here: an idle worker of this process looks at once."""
    runner = app.get(RUNNER)
    if runner is not None:
        runner.wake()


async def workers(app: web.Application) -> AsyncIterator[None]:
    """Start the workers once the database, store and keys are open; stop them first."""
    settings = app[SETTINGS]
    workshop = Workshop(app[DB], app[STORE], app[KEYS], settings)
    runner = JobRunner(
        app[DB],
        app[STORE],
        workshop.handlers(),
        settings.jobs,
        slots=app.get(SLOTS, 0),
        clock=lambda: app[CLOCK](),
        observer=app[METRICS],
    )
    app[RUNNER] = runner

    async def depth() -> None:
        try:
            found = await queue.counts(app[DB])
        except StorageUnavailable:
            return  # /metrics still answers; readiness says the database is down
        for state, n in found.items():
            app[METRICS].jobs.labels(state).set(n)

    app[METRICS].refreshers.append(depth)
    runner.start()
    yield
    # Before the database closes: a job under way goes back to the queue at once.
    await runner.stop()
