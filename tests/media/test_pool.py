"""Image work runs in its own small pool, never in the default executor."""

from __future__ import annotations

import asyncio
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
