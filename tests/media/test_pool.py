"""Image work runs in its own small pool, never in the default executor."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from tests.files import jpeg_with_secrets
from vault.media.images import configure_vips, sanitise_jpeg
from vault.media.jpeg import JpegStripper
from vault.media.pool import ImagePool


async def test_image_work_runs_on_at_most_two_pool_threads() -> None:
    configure_vips()
    pool = ImagePool()
    stripper = JpegStripper()
    stripper.feed(jpeg_with_secrets())
    stripped = stripper.close()
    names: set[str] = set()

    def work() -> int:
        names.add(threading.current_thread().name)
        return sanitise_jpeg(stripped, 10**8).width

    try:
        widths = await asyncio.gather(*(pool.run(work) for _ in range(8)))
    finally:
        pool.shutdown()
    assert widths == [32] * 8
    assert 1 <= len(names) <= 2
    assert all(name.startswith("kluis-image") for name in names)


#: In a fresh interpreter: the minor page faults per 1 MiB buffer (a store's
#: read chunk, the plaintext decrypted from it) made and dropped 200 times,
#: two alive at once, as a link answer does.
_CHURN = """
import resource, sys
from vault.media.pool import tune_allocator
from vault.storage.base import READ_CHUNK
if sys.argv[1] == "tuned":
    tune_allocator()
held = []
for _ in range(20):
    held.append(bytearray(READ_CHUNK))
    if len(held) > 2:
        held.pop(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    held.append(bytearray(READ_CHUNK))
    if len(held) > 2:
        held.pop(0)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)
"""


def test_the_tuned_heap_serves_read_chunks_without_fresh_pages() -> None:
    # A fresh mapping per chunk costs a fault per 4 KiB page (256 a chunk):
    # about a third of a 5 MB link answer's CPU before the tuning.
    def faults(mode: str) -> float:
        done = subprocess.run(
            [sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True
        )
        return float(done.stdout)

    assert faults("tuned") < 16
