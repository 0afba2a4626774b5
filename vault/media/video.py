"""Videos as they stream in: metadata removed, frames and size untouched.

:func:`scrub` wraps an upload's chunk stream: the bytes that come out are the
same length as those that went in, with the metadata boxes (MP4, MOV, 3GP:
:mod:`vault.media.bmff`) or elements (WebM: :mod:`vault.media.ebml`)
neutralised. The parsers are pure byte work on headers (a few microseconds a
chunk); the ``moov`` or ``Tracks`` they hold whole is rewritten on the event
loop: a walk over box headers and a copy of a few MB (64 MB at most), so no
executor hop is taken.
A malformed container raises ``UnsupportedType`` (415) mid-stream; the
caller discards what it stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from vault.media.bmff import BmffScrubber
from vault.media.ebml import EbmlScrubber
from vault.media.sniff import MOV, MP4, WEBM, MediaType


async def scrub(media: MediaType, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The video's bytes with its metadata neutralised, as they arrive."""
    scrubber: BmffScrubber | EbmlScrubber
    if media in (MP4, MOV):
        scrubber = BmffScrubber()
    elif media == WEBM:
        scrubber = EbmlScrubber()
    else:  # pragma: no cover - sniffing only lets these three through
        raise ValueError(f"not a video type: {media.mime}")
    async for chunk in source:
        for piece in scrubber.feed(chunk):
            yield piece
    for piece in scrubber.close():
        yield piece
