"""The image pool: where decoding and encoding photos runs, and memory returns.

Image work is blocking and needs tens of MB per photo for a moment. Run in
the default executor it spreads over many threads, and glibc gives each
thread its own malloc arena that keeps its high-water mark: resident memory
then grows by a full decode per thread and stays (issue 23: 109 MB to 207 MB
over ten 12 MP uploads). So image work runs here instead: a bounded
:class:`vault.executors.Pool` of :data:`WORKERS` threads (two: this machine
kind has two cores, and libvips spreads each photo over its own worker
threads anyway), and after each job ``malloc_trim(0)`` hands the freed pages
back to the kernel; :func:`tune_allocator` (called once at start) fixes
glibc's mmap threshold and caps its arenas. bench/imagemem.py measures the
choices (default executor, ``M_ARENA_MAX`` alone, this pool with and without
the trim and the tuning).

May touch: the threads it owns and, through libc, the C heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from vault.executors import Pool

T = TypeVar("T")

WORKERS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - not glibc
        return None


#: glibc mallopt parameters.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
#: Buffers this large or larger are mapped on their own and unmapped when
#: freed: above the blob store's read chunks (15 segments, 983,280 bytes) and
#: the plaintext made from one, well below a 5 MB upload or a decode.
MMAP_THRESHOLD = 2 * 1024 * 1024
#: Free memory at the top of the heap kept rather than handed back at every
#: free (glibc's default is 128 KiB once the mmap threshold is fixed).
TRIM_THRESHOLD = 16 * 1024 * 1024
ARENAS = 2


def tune_allocator() -> None:
    """Bound glibc's heap for image work and keep link serving off fresh
    pages; once, at start.

    A fixed mmap threshold stops glibc from raising it after the first large
    free (it would then serve every later 5-50 MB upload buffer and decode
    from the heap, where fragments stay resident); two arenas stop each of
    libvips' worker threads from growing a heap of its own.

    The threshold lies above the ~1 MB chunks a link answer or an export reads and
    decrypts (vault/storage, vault/crypto/stream.py), and the heap's top is
    trimmed only past :data:`TRIM_THRESHOLD`: with a 1 MiB threshold and the
    default trim, every such chunk was a fresh mapping, zeroed page by page
    on first touch and unmapped after, about a third of the CPU of a 5 MB
    answer (docs/operations.md). The image pool's ``malloc_trim(0)`` after
    each job still hands everything free back.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        libc.mallopt(_M_ARENA_MAX, ARENAS)


def trim() -> None:
    """Give memory freed by C code back to the kernel (a no-op without glibc)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class ImagePool(Pool):
    """A small executor for image work that trims the C heap after each job."""

    def __init__(self, workers: int = WORKERS, *, trim_after: bool = True) -> None:
        super().__init__("kluis-image", workers)
        self.trim_after = trim_after

    def _job(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        finally:
            if self.trim_after:
                trim()


#: The process's image pool. Its threads start on first use; a process that
#: never ingests a photo never starts them.
IMAGE_POOL = ImagePool()
