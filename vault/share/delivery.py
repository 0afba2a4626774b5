"""Serving a stored blob to a link: Range, ETag, HEAD, and safe headers.

Only the segments a Range needs are read and decrypted. Every answer carries
the sniffed type (never one a client chose), ``nosniff``, a sandboxing CSP,
``no-referrer`` and ``Cache-Control: private`` with a max-age no longer than
the link has left. A client that goes away mid-stream stops the reading at
once (the decrypting generator is closed, the store's response released).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime
from urllib.parse import quote

from aiohttp import web

from vault.crypto.handles import ItemKey
from vault.crypto.stream import decrypt_range
from vault.items.service import StoredBlob
from vault.storage import BlobStore

#: Bodies up to this size are gathered and sent with their headers at once.
SMALL_BODY = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "application/pdf": "pdf",
}


@dataclasses.dataclass(frozen=True)
class Delivery:
    item_id: str
    blob: StoredBlob
    key: ItemKey
    disposition: str
    file_name: str
    expires: datetime


def etag_of(blob: StoredBlob) -> str:
    # Blobs never change; a hash of the (random) blob key names the content
    # without telling the storage key.
    return '"' + hashlib.sha256(f"{blob.blob_key}/{blob.variant}".encode()).hexdigest()[:32] + '"'


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """(start, end exclusive) of a single byte range; None to send everything;
    False when the range cannot be satisfied (416)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: send it whole (RFC 9110 allows it)
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        count = int(last)
        if count == 0 or size == 0:
            return False
        return max(size - count, 0), size
    start = int(first)
    if start >= size:
        return False
    end = size if not last else min(int(last) + 1, size)
    if end <= start:
        return None
    return start, end


def safe_file_name(name: str | None, fallback: str, content_type: str, variant: str) -> str:
    """A download name made of harmless characters, with the stored type's extension."""
    stem = (name or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", stem).strip(" ._")[:80] or fallback
    if variant != "original":
        stem += f"-{variant}"
    extension = _EXTENSIONS.get(content_type.split(";")[0], "bin")
    return f"{stem}.{extension}"


def headers_for(delivery: Delivery, now: datetime) -> dict[str, str]:
    remaining = max(0, int((delivery.expires - now).total_seconds()))
    name = delivery.file_name
    return {
        "Content-Type": delivery.blob.content_type,
        "ETag": etag_of(delivery.blob),
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={remaining}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
        "Content-Disposition": (
            f"{delivery.disposition}; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"
        ),
    }


async def serve(
    request: web.Request,
    store: BlobStore,
    delivery: Delivery,
    now: datetime,
    on_complete: Callable[[], Awaitable[None]] | None = None,
    before_send: Callable[[int, int, int], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """Answer GET or HEAD for the delivery.

    ``before_send(status, start, end)`` runs before the first byte leaves (the
    audit record; if it raises, nothing is sent); ``on_complete`` after a
    whole body was sent.
    """
    blob = delivery.blob

    def body(start: int, end: int) -> AsyncGenerator[bytes, None]:
        def read(offset: int, length: int) -> AsyncIterator[bytes]:
            return store.get(blob.blob_key, offset, length)

        return decrypt_range(
            delivery.key, delivery.item_id, blob.variant, read, blob.blob_size, start, end
        )

    return await serve_ranged(
        request,
        blob.plaintext_size,
        headers_for(delivery, now),
        body,
        on_complete=on_complete,
        before_send=before_send,
    )


async def serve_ranged(
    request: web.Request,
    size: int,
    headers: dict[str, str],
    body: Callable[[int, int], AsyncGenerator[bytes, None]],
    *,
    on_complete: Callable[[], Awaitable[None]] | None = None,
    before_send: Callable[[int, int, int], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """GET or HEAD of ``size`` bytes that ``body(start, end)`` produces, with
    Range, If-Range and If-None-Match against ``headers["ETag"]``."""
    if _matches(request.headers.get("If-None-Match"), headers["ETag"]):
        return web.Response(status=304, headers=_without_body(headers))
    wanted = parse_range(request.headers.get("Range"), size)
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range != headers["ETag"]:
        wanted = None  # the client's copy is another version: send it whole
    if wanted is False:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=_without_body(headers))
    start, end = wanted if isinstance(wanted, tuple) else (0, size)
    status = 206 if isinstance(wanted, tuple) else 200
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if before_send is not None:
        await before_send(status, start, end)
    if request.method != "HEAD" and end - start <= SMALL_BODY:
        # A thumbnail: gathered first, then headers and body leave in one write.
        response: web.StreamResponse = web.Response(
            status=status, headers=headers, body=await _gather(body(start, end))
        )
        await response.prepare(request)
    else:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        chunks = body(start, end)
        try:
            async for chunk in chunks:
                await response.write(chunk)
        finally:
            await chunks.aclose()
    await response.write_eof()
    if status == 200 and on_complete is not None:
        await on_complete()
    return response


async def _gather(chunks: AsyncGenerator[bytes, None]) -> bytes:
    try:
        return b"".join([chunk async for chunk in chunks])
    finally:
        await chunks.aclose()


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or etag in [t.strip() for t in header.split(",")]


def _without_body(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("Content-Type", "Content-Disposition")}
