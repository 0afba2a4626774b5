"""Videos as they stream in: metadata removed, frames and size untouched.

:func:`scrub` wraps an upload's chunk stream: the bytes that come out are the
same length as those that went in, with the metadata boxes (MP4, MOV, 3GP:
:mod:`vault.media.bmff`) or elements (WebM: :mod:`vault.media.ebml`)
neutralised. The parsers are pure byte work on headers (a few microseconds a
chunk); the ``moov`` or ``Tracks`` they hold whole is rewritten on the event
loop: a walk over box headers and a copy of a few MB (64 MB at most), so no
executor hop is taken. :class:`Scrubbed` does the same and, once the stream
has ended, tells what the container holds (:mod:`vault.media.playable`): the
variants to make after upload are decided from it.
A malformed container raises ``UnsupportedType`` (415) mid-stream; the
caller discards what it stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from vault.media.bmff import BmffScrubber
from vault.media.ebml import EbmlScrubber
from vault.media.playable import VideoFacts, bmff_facts, ebml_facts
from vault.media.sniff import MOV, MP4, WEBM, MediaType


class Scrubbed:
    """The video's bytes with its metadata neutralised, as they arrive; then its facts."""

    def __init__(self, media: MediaType, source: AsyncIterable[bytes]) -> None:
        if media not in (MP4, MOV, WEBM):  # pragma: no cover - sniffing only lets these through
            raise ValueError(f"not a video type: {media.mime}")
        self.media, self.source = media, source
        self._scrubber = BmffScrubber() if media in (MP4, MOV) else EbmlScrubber()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        scrubber = self._scrubber
        async for chunk in self.source:
            for piece in scrubber.feed(chunk):
                yield piece
        for piece in scrubber.close():
            yield piece

    @property
    def facts(self) -> VideoFacts | None:
        """The tracks of the container (None if it had no header to read them from)."""
        if isinstance(self._scrubber, BmffScrubber):
            moov = self._scrubber.moov
            return None if moov is None else bmff_facts(self.media, moov)
        tracks = self._scrubber.tracks
        return None if tracks is None else ebml_facts(self.media, tracks)


async def scrub(media: MediaType, source: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The video's bytes with its metadata neutralised, as they arrive."""
    async for piece in Scrubbed(media, source):
        yield piece
