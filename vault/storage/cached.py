"""Opening and reading a file on the event loop, only when that cannot wait.

A trip to a worker thread costs more than reading a thumbnail that is
already in memory: the loop hands the interpreter lock to the thread and
back. So the local store first tries to do the work on the loop, from the
kernel's caches only:

* :func:`open_cached`: ``openat2`` with ``RESOLVE_CACHED`` (Linux 5.12)
  opens only if every part of the path is in the lookup cache, else fails
  with ``EAGAIN`` rather than reading the disk;
* :func:`read_cached`: ``preadv2`` with ``RWF_NOWAIT`` returns only what is
  in the page cache, else ``EAGAIN``.

Either answers None when it would have to wait (or the system lacks the
call), and the caller goes to a thread as before. Nothing here ever blocks
the loop on the disk.

``openat2`` has no wrapper in the C library, so it is called by its number,
and only where that number is known (:data:`OPENAT2_NUMBERS`): a number is
an architecture's own (Alpha gives 437 to another call), so elsewhere the
open goes to a thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

#: ``openat2``'s system call number, for 64-bit processes on these machines
#: (``uname -m``), from their kernel tables: arch/x86/entry/syscalls/
#: syscall_64.tbl, and include/uapi/asm-generic/unistd.h, which arm64 uses.
#: A 32-bit process on a 64-bit kernel (x32, i386, arm) is left out: its
#: numbers differ (x32 adds 0x40000000).
OPENAT2_NUMBERS = {"x86_64": 437, "aarch64": 437}
_RESOLVE_CACHED = 0x20
_AT_FDCWD = -100
#: struct open_how {u64 flags; u64 mode; u64 resolve;}
_HOW = struct.pack("=QQQ", os.O_RDONLY | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def openat2_number(machine: str, pointer_bits: int) -> int | None:
    """The number to call ``openat2`` by on ``machine``, or None if unknown."""
    if pointer_bits != 64:
        return None
    return OPENAT2_NUMBERS.get(machine)


class _Openat2:
    def __init__(self, machine: str | None = None, pointer_bits: int | None = None) -> None:
        """The call for this process (or, for tests, for another machine)."""
        if machine is None:
            machine = platform.machine()
        if pointer_bits is None:
            pointer_bits = ctypes.sizeof(ctypes.c_void_p) * 8
        self._number = openat2_number(machine, pointer_bits)
        self._syscall = None
        if sys.platform == "linux" and self._number is not None:
            syscall = ctypes.CDLL(None, use_errno=True).syscall
            # Declared once: converting each argument by hand costs more than the call.
            syscall.argtypes = [
                ctypes.c_long,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_char_p,
                ctypes.c_size_t,
            ]
            syscall.restype = ctypes.c_long
            self._syscall = syscall

    def __call__(self, path: bytes) -> int | None:
        if self._syscall is None:
            return None
        fd = int(self._syscall(self._number, _AT_FDCWD, path, _HOW, len(_HOW)))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code == errno.EAGAIN:
            return None
        if code in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
            # An older kernel, or a sandbox that forbids the call: threads from now on.
            self._syscall = None
            return None
        raise OSError(code, os.strerror(code), os.fsdecode(path))


_openat2 = _Openat2()


def open_cached(path: str | os.PathLike[str]) -> int | None:
    """A read-only descriptor of ``path`` if it opens from the lookup cache, else None.

    Raises what ``open`` would (``FileNotFoundError``...) when the cache
    already knows the answer.
    """
    return _openat2(os.fsencode(path))


def read_cached(fd: int, size: int, offset: int) -> bytes | None:
    """Up to ``size`` bytes at ``offset`` from the page cache (b"" at the end
    of the file), or None if none of them is there yet."""
    if _NOWAIT is None:
        return None
    buffer = bytearray(size)
    try:
        got = os.preadv(fd, [buffer], offset, _NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return None  # a file system without it
        raise
    if got < size:
        del buffer[got:]
    return buffer  # type: ignore[return-value]  # bytes-like, and not copied again
