"""Bounded thread pools, one for each kind of blocking work.

Blocking work that shared asyncio's default executor competed for its
threads: a slow S3 call or a long local write could hold every one of them
while a link's facts waited for a SQLite read (issue 16). Each kind now has a
pool of its own, with a fixed number of threads:

* :data:`STORAGE`: object-store calls (minio) and the local store's file
  work (create, write, rename, open).
* :data:`DATABASE`: batched reads on a synchronous SQLite connection
  (:class:`vault.db.reads.Reader`). aiosqlite keeps a thread per connection
  of its own, and asyncpg none.
* image work (decode, encode) runs in :data:`vault.media.pool.IMAGE_POOL`,
  a pool of this kind that also returns freed C heap to the kernel.

Threads start on first use, so a command that never reads a blob never
starts the storage pool; the interpreter joins them at exit.

May touch: the threads it owns.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Pool:
    """A named executor of at most ``workers`` threads, made on first use."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix=self.name
                )
            return self._executor

    def _job(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """``fn(*args, **kwargs)`` on one of the pool's threads, as a future
        of the running loop (so a caller can shield or wait for it)."""
        loop = asyncio.get_running_loop()
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        return loop.run_in_executor(self.executor, self._job, fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on one of the pool's threads."""
        return await self.submit(fn, *args, **kwargs)

    def shutdown(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


#: minio's HTTP pool keeps ten connections; eight calls in flight leave room
#: for the health check.
STORAGE = Pool("kluis-storage", 8)
#: As many threads as the SQLite reader keeps connections.
DATABASE = Pool("kluis-db", 8)
