"""The processes of ``kluis serve``: a worker serves the app, a supervisor keeps N of them.

**A worker** is one full instance of the service (``create_app``) on the
shared database, blob store and key store: several processes are the normal
case (docs/architecture.md, "Scale-out"), the local keyring is shared under
its file lock, the link-signing secrets live in the database, and on SQLite
each worker's audit writer thread takes the database's write lock for each
commit, so any number of them keep one chain. With ``--workers N`` (N > 1)
every worker binds the port with ``SO_REUSEPORT`` and the kernel spreads new
connections over them. On SIGTERM or SIGINT a worker stops listening, lets
the answers under way finish (at most ``--shutdown-timeout`` seconds; a
download in progress is one of them), waits until each connection has sent
what it still buffers (a handler returns after its last write, and a slow
client may not have taken those bytes yet: closing the event loop then would
cut the answer short), within the same time, then closes its resources.

**The supervisor** (``--workers N``, N > 1) starts the workers as
``kluis serve --worker-index I`` in sessions of their own (Ctrl-C in a
terminal reaches the supervisor only, which stops them in order), waits until
each listens, and starts a worker again when one dies (after 0.5 s, doubling
up to 30 s while restarts keep failing). A worker that cannot start the first
time stops the whole start with its exit status. SIGTERM or SIGINT is passed
on to every worker as SIGTERM; a worker still running ``--shutdown-timeout``
+ 10 s later is killed. Each worker's standard input is a pipe from the
supervisor that it never writes: if the supervisor dies, even by SIGKILL,
the pipe ends and the worker stops as on SIGTERM, so no worker is left
behind.

This module may touch processes, signals and the listening socket; what a
request does is :mod:`vault.api`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import threading
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from vault import loops
from vault.api import create_app
from vault.api.app import server_options
from vault.api.security import access_logger_class
from vault.config import Settings
from vault.errors import ConfigError

log = logging.getLogger("kluis.serve")

#: Restart delays after a worker died: doubling while restarts fail, capped.
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
#: A worker that served this long before dying is not counted as failing.
HEALTHY_AFTER = 10.0
#: How long past the shutdown timeout a worker may take before it is killed.
KILL_GRACE = 10.0


def worker_count(text: str) -> int:
    """``--workers``: a number from 1, or ``auto`` (the cores this process may use)."""
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--workers must be a number from 1, or 'auto', not {text!r}")
    return count


# -- a worker -----------------------------------------------------------------


def run_worker(
    settings: Settings,
    host: str,
    port: int,
    *,
    shutdown_timeout: float,
    worker: int | None = None,
    ready_fd: int | None = None,
    jobs: int = 0,
) -> int:
    """Serve until SIGTERM or SIGINT (or, for a supervised worker, until the
    supervisor's pipe on standard input ends); 0 after a clean stop."""
    loops.run(
        _serve(settings, host, port, shutdown_timeout, worker, ready_fd, jobs),
        settings.server.event_loop,
    )
    return 0


async def _serve(
    settings: Settings,
    host: str,
    port: int,
    shutdown_timeout: float,
    worker: int | None,
    ready_fd: int | None,
    jobs: int,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = _DrainingRunner(
        create_app(settings, worker=worker, jobs=jobs),
        access_log_class=access_logger_class(settings.server),
        access_log=logging.getLogger("kluis.access"),
        shutdown_timeout=shutdown_timeout,
        **server_options(settings),
    )
    await runner.setup()  # opens the database, store and key provider, or raises why not
    try:
        site = web.TCPSite(runner, host, port, reuse_port=True if worker is not None else None)
        try:
            await site.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            hint = " (another process listens there)" if exc.errno == errno.EADDRINUSE else ""
            raise ConfigError(
                f"cannot listen on {host}:{port} (server.host, server.port): {reason}{hint}."
            ) from None
        who = f" (worker {worker}, pid {os.getpid()})" if worker is not None else ""
        kind = "uvloop" if "uvloop" in type(loop).__module__ else "asyncio"
        log.info("serving on http://%s:%d%s (event loop: %s)", host, port, who, kind)
        if ready_fd is not None:
            try:
                os.write(ready_fd, b"ready\n")
            except BrokenPipeError:
                stop.set()  # the supervisor went away while this worker started
            finally:
                os.close(ready_fd)
        if worker is not None:
            _stop_when_stdin_ends(loop, stop)
        await stop.wait()
        log.info(
            "stopping%s: no new connections; finishing the answers under way (at most %g s)",
            who,
            shutdown_timeout,
        )
    finally:
        # One deadline for the whole stop: the handlers, then their buffers.
        deadline = loop.time() + shutdown_timeout
        cut = loop.call_at(deadline, runner.cut_off)
        try:
            await runner.cleanup()
            await runner.sent(deadline)
        finally:
            cut.cancel()
    log.info("stopped%s", who)


class _DrainingRunner(web.AppRunner):
    """aiohttp's runner, keeping the connections' transports it stops with.

    Its ``cleanup`` stops the sites, lets each handler finish, then closes
    each transport: a close that waits for the transport's buffer to empty,
    but only while the event loop runs, and the worker closes the loop right
    after. :meth:`sent` waits for those buffers; :meth:`cut_off` ends what is
    left at the deadline (aiohttp alone would wait up to twice its timeout
    for a handler stuck writing to a client that stopped reading).
    """

    transports: list[asyncio.Transport]

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.transports = []

    async def shutdown(self) -> None:
        # ``cleanup`` calls this once the sites stopped (no new connection)
        # and before the handlers are waited for and their transports closed
        # (and forgotten): the last moment every connection is at hand.
        if self.server is not None:
            self.transports = [
                h.transport for h in self.server.connections if h.transport is not None
            ]
        await super().shutdown()

    def _open(self) -> list[asyncio.Transport]:
        # A transport closes once its buffer is empty; uvloop's are no
        # asyncio.WriteTransport but have its methods.
        return [t for t in self.transports if not t.is_closing() or t.get_write_buffer_size()]

    async def sent(self, deadline: float) -> None:
        """Wait until every transport has handed its bytes to the kernel
        (which sends them, then the close, even after this process ends)."""
        loop = asyncio.get_running_loop()
        # Polled: a transport tells its protocol (aiohttp's), not us, when it emptied.
        pending = [t for t in self.transports if t.get_write_buffer_size()]
        while pending and loop.time() < deadline:
            await asyncio.sleep(0.02)
            pending = [t for t in pending if t.get_write_buffer_size()]
        # One turn of the loop: each emptied transport's own close runs
        # before the loop closes.
        await asyncio.sleep(0)

    def cut_off(self) -> None:
        """At the deadline: drop the connections still answering or sending."""
        left = self._open()
        if not left:
            return
        log.warning(
            "%d connections still answering or with %d bytes unsent at the shutdown "
            "timeout; closing them (raise --shutdown-timeout if slow downloads are cut off)",
            len(left),
            sum(t.get_write_buffer_size() for t in left),
        )
        for transport in left:
            transport.abort()


def _stop_when_stdin_ends(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, name="kluis-supervisor-pipe", daemon=True).start()


# -- the supervisor -----------------------------------------------------------


class WorkerFailed(Exception):
    """A worker could not start; ``status`` is its exit status."""

    def __init__(self, index: int, status: int) -> None:
        super().__init__(f"worker {index} could not start (exit status {status})")
        self.index, self.status = index, status


class Supervisor:
    """Keeps ``count`` workers running ``command`` (``kluis serve ...``) until stopped."""

    def __init__(self, count: int, command: Sequence[str], shutdown_timeout: float) -> None:
        self.count = count
        self.command = list(command)
        self.shutdown_timeout = shutdown_timeout
        self._stopping = asyncio.Event()
        self._live: dict[int, asyncio.subprocess.Process] = {}

    async def run(self) -> int:
        """0 after a clean stop; a worker's exit status if one could not start."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping.set)
        first: list[asyncio.Future[None]] = [loop.create_future() for _ in range(self.count)]
        slots = [asyncio.create_task(self._keep(i, first[i])) for i in range(self.count)]
        starting = asyncio.gather(*first)
        stop = asyncio.create_task(self._stopping.wait())
        waiting: set[asyncio.Future[Any]] = {starting, stop}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # told to stop while workers were starting
            starting.cancel()
            await self._stop_all(slots)
            return 0
        stop.cancel()
        failed = starting.exception()
        if isinstance(failed, WorkerFailed):
            log.error("%s; stopping the others", failed)
            self._stopping.set()
            await self._stop_all(slots)
            return failed.status if failed.status > 0 else 1  # killed by a signal
        pids = ", ".join(str(p.pid) for _, p in sorted(self._live.items()))
        log.info("%d workers serving (pids %s)", self.count, pids)
        await self._stopping.wait()
        log.info("stopping %d workers", self.count)
        await self._stop_all(slots)
        log.info("all workers stopped")
        return 0

    async def _stop_all(self, slots: list[asyncio.Task[None]]) -> None:
        for process in list(self._live.values()):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waiting = [p.wait() for p in self._live.values()]
        if waiting:
            done = asyncio.gather(*waiting)
            try:
                await asyncio.wait_for(done, self.shutdown_timeout + KILL_GRACE)
            except TimeoutError:
                for index, process in self._live.items():
                    if process.returncode is None:
                        log.error("worker %d (pid %d) did not stop; killing it", index, process.pid)
                        with contextlib.suppress(ProcessLookupError):
                            process.kill()
                await asyncio.gather(*(p.wait() for p in self._live.values()))
        for slot in slots:
            slot.cancel()
        await asyncio.gather(*slots, return_exceptions=True)

    async def _keep(self, index: int, first: asyncio.Future[None]) -> None:
        """Run worker ``index``; start it again whenever it dies, until stopping."""
        delay = FIRST_DELAY
        while not self._stopping.is_set():
            process, ready = await self._start(index)
            started = asyncio.get_running_loop().time()
            if not first.done():
                if not ready:
                    first.set_exception(WorkerFailed(index, await process.wait()))
                    return
                first.set_result(None)
            status = await process.wait()
            self._live.pop(index, None)
            if self._stopping.is_set():
                return
            how = f"signal {-status}" if status < 0 else f"exit status {status}"
            if ready and asyncio.get_running_loop().time() - started >= HEALTHY_AFTER:
                delay = FIRST_DELAY
            log.warning(
                "worker %d (pid %d) ended with %s; starting another in %g s",
                index,
                process.pid,
                how,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(MAX_DELAY, delay * 2)

    async def _start(self, index: int) -> tuple[asyncio.subprocess.Process, bool]:
        """Start worker ``index``; (its process, whether it got to listening)."""
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                "--worker-index",
                str(index),
                "--ready-fd",
                str(write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                # A session of its own: its own process group (a terminal's
                # Ctrl-C reaches the supervisor only), and where the kernel
                # shares CPU time out per session (Linux's autogroup, on by
                # default), its own share: N workers in one session would
                # get no more of a busy host's CPU than one.
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self._live[index] = process
        try:
            # "ready", or nothing once the worker exits (its end of the pipe closes).
            message = await asyncio.to_thread(os.read, read_fd, 64)
        finally:
            os.close(read_fd)
        if message.startswith(b"ready"):
            log.info("worker %d listening (pid %d)", index, process.pid)
            return process, True
        return process, False
