"""Blobs on the local disk: the embedded default.

Layout under the root: ``ab/cd/abcd…`` (two levels of sharding on the key's
first four characters, so no directory grows past 65,536 entries), and
``.tmp/`` for writes in progress. A put writes a temporary file, fsyncs it,
renames it into place and fsyncs the directory, so a blob is either wholly
there or not at all, across a crash of the process or the machine. Every file
operation that may wait for the disk runs in the default executor; reads the
kernel can answer from its caches are done on the loop (:mod:`cached`).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from vault.executors import STORAGE
from vault.storage.base import (
    READ_CHUNK,
    BlobNotFound,
    StorageUnavailable,
    check_key,
    check_range,
)
from vault.storage.cached import open_cached, read_cached

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_TMP = ".tmp"
#: A write in ``.tmp/`` untouched this long is a crash's leftover, whoever
#: made it: cleared when a store opens (each batch written touches it).
STALE_WRITE_SECONDS = 24 * 3600
#: This host, as the first part of the names of the writes in ``.tmp/``
#: (``<host>-<pid>-<random>.part``): a write of a process of this host that
#: is gone is cleared at once; another host's (a shared volume, another
#: container with pids of its own) only when stale.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _write_name(suffix: str) -> str:
    return f"{_HOST}-{os.getpid()}-{secrets.token_hex(12)}{suffix}"


def _left_by_the_dead(name: str) -> bool:
    """Whether ``name`` is a write of a process of this host that has ended."""
    host, _, rest = name.partition("-")
    pid = rest.partition("-")[0]
    if host != _HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # there, another user's
    return False


#: Writes are gathered to this size before one executor call writes them.
_WRITE_BATCH = 1024 * 1024
#: At most this many pieces in one writev (Linux's IOV_MAX is 1024).
_MAX_PIECES = 512
#: Unlinks per trip to a storage thread (one unlink is ~15 µs; a trip costs
#: more than that), and such trips at once: half the storage pool, so links
#: served beside a retention run still find threads.
_UNLINK_CHUNK = 256
_PARALLEL_UNLINKS = 4


def _unavailable(exc: OSError) -> StorageUnavailable:
    log.warning("local blob store error: %s", exc.strerror or type(exc).__name__)
    return StorageUnavailable()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDiskStore:
    """A :class:`~vault.storage.base.BlobStore` on a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self._tmp = self.root / _TMP

    @classmethod
    async def open(cls, root: Path) -> LocalDiskStore:
        store = cls(root)
        try:
            await _run(store._tmp.mkdir, parents=True, exist_ok=True, mode=0o700)
            # Writes a crash interrupted are garbage: nothing names them.
            # Not those of processes still running (a server beside this
            # cron job, a second instance): they are uploads under way.
            await _run(store._clear_tmp)
        except OSError as exc:
            raise _unavailable(exc) from exc
        return store

    def _clear_tmp(self) -> None:
        """Remove the writes in ``.tmp/`` that nobody will finish (see :data:`_HOST`)."""
        before = time.time() - STALE_WRITE_SECONDS
        for entry in os.scandir(self._tmp):
            try:
                if _left_by_the_dead(entry.name) or entry.stat().st_mtime < before:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass  # its writer placed or discarded it meanwhile

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[0:2] / key[2:4] / key

    async def put(self, key: str, stream: AsyncIterable[bytes]) -> int:
        final = self._path(key)
        tmp = self._tmp / _write_name(".part")
        size = 0
        fd = -1
        placed = False
        creating: asyncio.Future[int] | None = None
        pending: asyncio.Future[Any] | None = None

        async def call(future: asyncio.Future[_T]) -> _T:
            nonlocal pending
            pending = future
            # Shielded: a cancellation must not forget a call the thread is
            # still making with the descriptor (see the finally clause).
            result = await asyncio.shield(future)
            pending = None
            return result

        try:
            creating = STORAGE.submit(_create, tmp)
            fd = await call(creating)
            # The pieces themselves, written with one writev: gathering them
            # into one buffer first would copy every byte of the blob once more.
            batch: list[bytes] = []
            gathered = 0
            async for chunk in stream:
                batch.append(chunk if type(chunk) is bytes else bytes(chunk))
                gathered += len(chunk)
                if gathered >= _WRITE_BATCH or len(batch) >= _MAX_PIECES:
                    size += gathered
                    await call(STORAGE.submit(_write_all, fd, batch))
                    batch, gathered = [], 0
            if batch:
                size += gathered
                await call(STORAGE.submit(_write_all, fd, batch))
            # _finish closes the descriptor whatever happens.
            done, fd = fd, -1
            await call(STORAGE.submit(_finish, done, tmp, final))
            placed = True
        except OSError as exc:
            raise _unavailable(exc) from exc
        finally:
            if pending is not None:
                # Interrupted mid-call: the thread finishes first, so a
                # descriptor is never closed under its write, nor opened and
                # then forgotten.
                await asyncio.wait([pending])
                if pending is creating and pending.exception() is None:
                    fd = creating.result()
            if not placed:
                await asyncio.shield(STORAGE.submit(_discard, fd, tmp))
        return size

    async def get(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        check_range(offset, length)
        check_key(key)
        # A string, not a Path: this is on every link answer's way.
        path = f"{self._root}/{key[0:2]}/{key[2:4]}/{key}"
        chunk: bytes | None = None
        try:
            # From the kernel's caches on the loop where they have it (see
            # vault.storage.cached); else opening and the first read in one
            # trip to a thread, so a cold thumbnail still costs one hop.
            cached = open_cached(path)
            if cached is None:
                first = READ_CHUNK if length is None else min(READ_CHUNK, length)
                opening = _submit(_open_at, path, offset, first)
                try:
                    # Shielded: a cancellation (the client hung up) leaves the
                    # thread to finish, and the file it opens is closed then.
                    fd, chunk = await asyncio.shield(opening)
                except asyncio.CancelledError:
                    opening.add_done_callback(_close_opened)
                    raise
            else:
                fd = cached
        except FileNotFoundError:
            raise BlobNotFound() from None
        except OSError as exc:
            raise _unavailable(exc) from exc
        reading: asyncio.Future[bytes] | None = None
        try:
            size = os.fstat(fd).st_size  # an open file's inode: never waits
            end = size if length is None else min(offset + length, size)
            position = offset
            while position < end:
                want = min(READ_CHUNK, end - position)
                if chunk is None:
                    chunk = read_cached(fd, want, position)
                if chunk is None:
                    reading = _submit(os.pread, fd, want, position)
                    # Shielded, so that ``reading`` ends with the thread's read
                    # (see the finally clause).
                    chunk = await asyncio.shield(reading)
                if not chunk:
                    break
                yield chunk
                position += len(chunk)
                chunk = None
        except OSError as exc:
            raise _unavailable(exc) from exc
        finally:
            if reading is not None and not reading.done():
                # Cancelled during a read: closed once the thread is done with
                # the descriptor, never under it (the number could meanwhile
                # be given to another file, and the read read that).
                reading.add_done_callback(lambda _: os.close(fd))
            else:
                os.close(fd)

    async def size(self, key: str) -> int:
        path = self._path(key)
        try:
            stat = await _run(os.stat, path)
        except FileNotFoundError:
            raise BlobNotFound() from None
        except OSError as exc:
            raise _unavailable(exc) from exc
        return stat.st_size

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except BlobNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await _run(_unlink, path)
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def delete_many(self, keys: Sequence[str]) -> list[str]:
        # Plain strings, not Path objects: at 500,000 blobs a run, building
        # paths cost more than the unlinks. In key order, which is directory
        # order: the unlinks of a trip share directories and inode tables
        # (a retention run at 10,000 children x 50: 45 s against 48 s).
        root = os.fspath(self.root)
        paths = [(key, f"{root}/{key[0:2]}/{key[2:4]}/{check_key(key)}") for key in sorted(keys)]
        limit = asyncio.Semaphore(_PARALLEL_UNLINKS)

        async def unlink(chunk: list[tuple[str, str]]) -> tuple[list[str], OSError | None]:
            async with limit:
                return await _run(_unlink_all, chunk)

        answers = await asyncio.gather(
            *(
                unlink(paths[start : start + _UNLINK_CHUNK])
                for start in range(0, len(paths), _UNLINK_CHUNK)
            )
        )
        failures = [error for _, error in answers if error is not None]
        if failures:
            _unavailable(failures[0])  # its one log line
        return [key for done, _ in answers for key in done]

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        try:
            for shard in await _run(_subdirs, self.root, prefix, 0):
                for leaf in await _run(_subdirs, shard, prefix, 2):
                    names = await _run(os.listdir, leaf)
                    for name in names:
                        if name.startswith(prefix):
                            yield name
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def check(self) -> None:
        probe = self._tmp / _write_name(".probe")
        try:
            await _run(probe.write_bytes, b"")
            await _run(probe.unlink, missing_ok=True)
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        return None


def _submit(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> asyncio.Future[_T]:
    """One trip to a storage thread, as a future (to shield or wait for)."""
    return STORAGE.submit(fn, *args, **kwargs)


async def _run(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    return await _submit(fn, *args, **kwargs)


def _open_at(path: str | Path, offset: int, size: int) -> tuple[int, bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd, os.pread(fd, size, offset) if size else b""
    except BaseException:
        os.close(fd)
        raise


def _close_opened(opening: asyncio.Future[tuple[int, bytes]]) -> None:
    """Close what an :func:`_open_at` nobody waits for any more opened."""
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result()[0])


def _create(tmp: Path) -> int:
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)


def _finish(fd: int, tmp: Path, final: Path) -> None:
    """Make the written file durable and give it its name, in one trip to a
    thread: fsync, close, rename into place, fsync the directory."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _discard(fd: int, tmp: Path) -> None:
    """Close and remove a write that will not be placed. A failure here is
    only logged: the caller's own error says more, and whatever is left in
    ``.tmp/`` is cleared when a store opens (:meth:`LocalDiskStore._clear_tmp`)."""
    try:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove a discarded write: %s", exc.strerror or type(exc).__name__)


def _write_all(fd: int, pieces: Sequence[bytes]) -> None:
    """Write ``pieces`` one after another, all of them (a write may be partial)."""
    views = [memoryview(piece) for piece in pieces if piece]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _MAX_PIECES])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]


def _unlink(path: Path | str) -> None:
    # No directory fsync: a blob that reappears after a crash is only ever a
    # destroyed item's ciphertext, whose key is gone; the sweeper removes it.
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return
        raise


def _unlink_all(chunk: list[tuple[str, str]]) -> tuple[list[str], OSError | None]:
    """Unlink a chunk of blobs in one trip to a thread; the keys gone, and the
    first error (the rest of the chunk is still tried)."""
    gone: list[str] = []
    error: OSError | None = None
    for key, path in chunk:
        try:
            _unlink(path)
        except OSError as exc:
            error = error or exc
            continue
        gone.append(key)
    return gone, error


def _subdirs(parent: Path, prefix: str, start: int) -> list[Path]:
    """Shard directories under ``parent`` that can hold keys with ``prefix``.

    A two-character shard name ``s`` standing for key characters
    ``[start, start+2)`` fits when it and the prefix agree where both exist.
    """
    part = prefix[start : start + 2]
    out = []
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if entry.name.startswith(part) or part.startswith(entry.name):
            out.append(Path(entry.path))
    return out
