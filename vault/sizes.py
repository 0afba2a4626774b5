"""Sizes in messages: exact bytes, and MiB (2^20 bytes) to read them by.

A cap is set in MiB (``uploads.photo_max_mb = 40`` is 41,943,040 bytes); a
message that gave it in MB (10^6) beside a size in MB would call a file
refused for being 40.5 MiB "42 MB", or one just over the cap "40 MB, at most
40 MB". The bytes are exact; the MiB figure is rounded to one decimal, and
shown whole only when it is whole.
"""

from __future__ import annotations

MIB = 1024 * 1024


def size_text(n: int) -> str:
    """``41,943,040 bytes (40 MiB)``, ``42,500,000 bytes (40.5 MiB)``, ``512 bytes``."""
    if n < MIB:
        return f"{n:,} bytes"
    mib = f"{n // MIB}" if n % MIB == 0 else f"{n / MIB:.1f}"
    return f"{n:,} bytes ({mib} MiB)"
