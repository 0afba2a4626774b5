"""The kernel's page cache, for tests that need a blob read to go to the disk."""

from __future__ import annotations

import os
from pathlib import Path


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (written back first)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
