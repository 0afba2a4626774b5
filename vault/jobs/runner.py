"""Job workers: claim a job, keep its lease, run its handler, record the outcome.

A :class:`JobRunner` runs ``slots`` workers in one ``kluis serve`` process
(``--jobs``; with ``--workers`` they are spread over the worker processes,
vault/supervisor.py). Each worker:

1. now and then finds jobs whose lease ran out (:func:`~vault.jobs.queue.reap`);
2. claims the most urgent due job, or waits ``jobs.poll_seconds`` (at once
   when this process queued one: :meth:`JobRunner.wake`);
3. removes the blobs an earlier, interrupted attempt left (the job's scratch);
4. runs the kind's handler while renewing the lease every third of
   ``jobs.lease_seconds``; a handler commits its work and calls
   :func:`~vault.jobs.queue.done_in` in one transaction;
5. records what happened: :class:`Cancelled` (the item went meanwhile),
   :class:`Permanent` (``failed`` at once: another attempt would fail the
   same way), any other error (tried again after a backoff, ``failed``
   after the last attempt), the lease lost (another worker has it: nothing
   is changed). A failed attempt's scratch blobs are removed.

On stop (SIGTERM) a job under way is cancelled (its ffmpeg killed) and
given back to the queue at once, its attempt not counted. A worker killed
outright holds its lease until it runs out; then another worker takes the
job up (after the backoff), and the scratch of the killed attempt goes.

May touch: the job queue and, for scratch blobs, the blob store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from vault.config import JobSettings
from vault.errors import KluisError, StorageUnavailable
from vault.jobs import queue
from vault.jobs.queue import Job, LeaseLost
from vault.storage import BlobStore

log = logging.getLogger(__name__)


class Permanent(Exception):
    """The job cannot succeed: ``failed`` at once, with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Cancelled(Exception):
    """There is nothing left to do (the item was destroyed meanwhile)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Attempt:
    """One attempt at a job, as its handler sees it."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.job = job
        self._runner = runner
        self._scratch: list[str] = []
        #: Set when the lease was lost: another worker has the job.
        self.lost = False

    def now(self) -> datetime:
        return self._runner.clock()

    async def scratch(self, key: str) -> None:
        """Note a blob about to be written, so it is removed if this attempt dies."""
        self._scratch.append(key)
        await queue.note_scratch(self._runner.engine, self.job, self._scratch)

    @property
    def scratch_keys(self) -> tuple[str, ...]:
        return tuple(self._scratch)


Handler = Callable[[Attempt], Awaitable[None]]


class Observer(Protocol):
    """Where outcomes are counted (the app's metrics)."""

    def job_started(self, kind: str) -> None: ...

    def job_ended(self, kind: str, outcome: str, seconds: float) -> None: ...


class _Quiet:
    def job_started(self, kind: str) -> None:
        pass

    def job_ended(self, kind: str, outcome: str, seconds: float) -> None:
        pass


def describe(error: BaseException) -> str:
    """A failure's reason for the job's row: the vault's own words, never content."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, str):
        return reason
    if isinstance(error, KluisError):
        return f"{error.code}: {error.message}"
    return f"an unexpected {type(error).__name__}"


class JobRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        store: BlobStore,
        handlers: Mapping[str, Handler],
        settings: JobSettings,
        *,
        slots: int,
        clock: Callable[[], datetime],
        observer: Observer | None = None,
    ) -> None:
        self.engine, self.store, self.handlers = engine, store, dict(handlers)
        self.settings, self.slots, self.clock = settings, slots, clock
        self.observer: Observer = observer or _Quiet()
        self.worker = queue.worker_name()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reaped_at = 0.0

    def start(self) -> None:
        for slot in range(self.slots):
            self._tasks.append(asyncio.create_task(self._loop(slot), name=f"kluis-job-{slot}"))

    def wake(self) -> None:
        """A job was queued in this process: look now, not at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _loop(self, slot: int) -> None:
        # Each slot its own name: every guarded change tells the slots apart.
        worker = f"{self.worker}/{slot}"
        while True:
            try:
                await self._reap()
                job = await queue.claim(
                    self.engine, worker, self.clock(), self.settings, self.handlers
                )
            except StorageUnavailable:
                log.warning(
                    "job queue unreachable; trying again in %g s", self.settings.poll_seconds
                )
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
                continue
            try:
                await self.run(job)
            except (KluisError, LeaseLost) as error:
                # The outcome could not be recorded (the database went away): the
                # lease runs out and the job is taken up again. This slot goes on.
                log.warning("job %s: its outcome was not recorded: %s", job.id, describe(error))
                await asyncio.sleep(self.settings.poll_seconds)

    async def _reap(self) -> None:
        if time.monotonic() - self._reaped_at < self.settings.lease_seconds / 3:
            return
        self._reaped_at = time.monotonic()
        await self._remove(await queue.reap(self.engine, self.clock(), self.settings))

    async def drain(self) -> int:
        """Run every due job in this task until none is left (tests, tools); how many ran."""
        ran = 0
        while (
            job := await queue.claim(
                self.engine, f"{self.worker}/drain", self.clock(), self.settings, self.handlers
            )
        ) is not None:
            await self.run(job)
            ran += 1
        return ran

    async def _remove(self, keys: tuple[str, ...] | list[str]) -> None:
        for key in keys:
            try:
                await self.store.delete(key)
            except StorageUnavailable:
                log.warning("a job's scratch blob is not yet removed; the sweeper will")

    async def run(self, job: Job) -> None:
        """Run one claimed job to its recorded outcome."""
        started = time.monotonic()
        self.observer.job_started(job.kind)
        attempt = Attempt(self, job)
        work = asyncio.create_task(self._work(job, attempt))
        keeper = asyncio.create_task(self._keep(job, attempt, work))
        outcome = "lost"
        try:
            outcome = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if attempt.lost and not (current and current.cancelling()):
                return  # another worker has the job; this attempt just ends
            # This worker is stopping: the job goes back at once.
            await self._quietly(work)
            await self._remove(attempt.scratch_keys)
            with contextlib.suppress(KluisError, LeaseLost):
                await queue.release(self.engine, job, self.clock())
            outcome = "released"
            raise
        finally:
            keeper.cancel()
            self.observer.job_ended(job.kind, outcome, time.monotonic() - started)

    @staticmethod
    async def _quietly(task: asyncio.Task[str]) -> None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task

    async def _work(self, job: Job, attempt: Attempt) -> str:
        now = self.clock
        await self._remove(job.scratch)
        try:
            await self.handlers[job.kind](attempt)
            return "done"
        except LeaseLost:
            log.warning("job %s: another worker has it now; this attempt is dropped", job.id)
            return "lost"
        except Cancelled as stop:
            await self._remove(attempt.scratch_keys)
            await queue.cancel(self.engine, job, stop.reason, now())
            return "cancelled"
        except Permanent as failure:
            return await self._failed(job, attempt, failure.reason, final=True)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "job %s (%s) attempt %d failed: %s", job.id, job.kind, job.attempts, describe(error)
            )
            return await self._failed(job, attempt, describe(error), final=False)

    async def _failed(self, job: Job, attempt: Attempt, reason: str, *, final: bool) -> str:
        await self._remove(attempt.scratch_keys)
        try:
            state = await queue.fail(
                self.engine, job, reason, self.clock(), self.settings, final=final
            )
        except LeaseLost:
            return "lost"
        if state == queue.FAILED:
            log.warning("job %s (%s) failed: %s", job.id, job.kind, reason)
        return "failed" if state == queue.FAILED else "retry"

    async def _keep(self, job: Job, attempt: Attempt, work: asyncio.Task[str]) -> None:
        """Renew the lease while the work runs; stop the work if the lease is lost."""
        every = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                await queue.renew(self.engine, job, self.clock(), self.settings)
            except LeaseLost:
                log.warning("job %s: its lease was lost; stopping this attempt", job.id)
                attempt.lost = True
                work.cancel()
                return
            except StorageUnavailable:
                log.warning("job %s: its lease could not be renewed; trying again", job.id)
