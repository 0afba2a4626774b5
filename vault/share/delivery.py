"""Serving a stored blob to a link: Range, ETag, HEAD, and safe headers.

Only the segments a Range needs are read and decrypted. Every answer carries
the sniffed type (never one a client chose), ``nosniff``, a sandboxing CSP,
``no-referrer`` and ``Cache-Control: private, no-cache``: a browser or proxy
may keep the bytes but must ask again before showing them, and is answered
304 only after the policy allowed that request (docs/api-notes.md). A client
that goes away mid-stream stops the reading at once (the decrypting generator
is closed, the store's response released).

Conditional requests follow RFC 9110 §13.2.2 in its order, as nginx answers
them: ``If-Match`` (strong comparison, §13.1.1) else 412; ``If-None-Match``
(weak comparison, §13.1.2) gives 304 to GET and HEAD; ``If-Range`` (§13.1.5)
sends the range only for a strongly matching entity tag (a date cannot
match: there is no Last-Modified), else the whole content; then ``Range``
(§14.2): one satisfiable range gives 206, an unsatisfiable one 416 with
``Content-Range: bytes */size`` and the JSON error body of API.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime

from aiohttp import web

from vault.crypto._primitives import IntegrityError
from vault.crypto.handles import ItemKey
from vault.crypto.stream import Ciphers, decrypt_range
from vault.errors import KluisError
from vault.items.damage import DamageLog
from vault.items.service import StoredBlob
from vault.share.filenames import content_disposition, safe_file_name
from vault.storage import BlobStore

__all__ = [
    "DAMAGE",
    "ENDED",
    "Delivery",
    "Ending",
    "etag_of",
    "parse_range",
    "safe_file_name",
    "serve",
    "serve_ranged",
]

log = logging.getLogger(__name__)

#: Link answers: any cache (the browser's, a proxy's) must ask again before it
#: shows the bytes, so a consent withdrawn or a block placed since stops them
#: too; a 304 is answered only after the policy allowed the request.
REVALIDATE = "private, no-cache"
#: Bodies up to this size are gathered and sent with their headers at once.
SMALL_BODY = 256 * 1024
_RANGE = re.compile(r"^bytes[ \t]*=[ \t]*(\d*)[ \t]*-[ \t]*(\d*)$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Delivery:
    item_id: str
    blob: StoredBlob
    key: ItemKey
    disposition: str
    file_name: str
    expires: datetime
    #: Cipher states kept with the key (a link's: vault/share/opened.py).
    ciphers: Ciphers | None = None


def etag_of(blob: StoredBlob) -> str:
    # Blobs never change; a hash of the (random) blob key names the content
    # without telling the storage key.
    return '"' + hashlib.sha256(f"{blob.blob_key}/{blob.variant}".encode()).hexdigest()[:32] + '"'


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end exclusive) of a single byte range; None to send everything;
    when the range cannot be satisfied (416), what is wrong with it and what to
    send instead."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: send it whole (RFC 9110 allows it)
    first, last = match.groups()
    if not first and not last:
        return None
    if size == 0:
        return "This content is empty, so no range of it can be sent; leave Range out."
    whole = f"this content has {size} bytes, 0 to {size - 1}"
    if not first:  # the last n bytes
        count = int(last)
        if count == 0:
            return (
                f"The range bytes=-0 asks for no bytes: ask for the last 1 or more, as in "
                f"bytes=-{min(size, 1024)} ({whole}), or leave Range out."
            )
        return max(size - count, 0), size
    start = int(first)
    if last and int(last) < start:
        # An invalid range: 416, as nginx answers (RFC 9110 §14.1.1).
        instead = [f"bytes={last}-{first}"] + (
            [f"bytes={first}-{size - 1}"] if start < size else []
        )
        return (
            f"The range bytes={first}-{last} ends before it starts: give its first byte, "
            f"then its last, as in {' or '.join(instead)} ({whole}), or leave Range out."
        )
    if start >= size:
        return (
            f"The range starts at byte {start}, past the end of the {size} bytes of this "
            f"content; ask for bytes from 0 to {max(size - 1, 0)}, or leave Range out."
        )
    end = size if not last else min(int(last) + 1, size)
    return start, end


def headers_for(delivery: Delivery, now: datetime) -> dict[str, str]:
    name = delivery.file_name
    return {
        "Content-Type": delivery.blob.content_type,
        "ETag": etag_of(delivery.blob),
        "Accept-Ranges": "bytes",
        "Cache-Control": REVALIDATE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
        "Content-Disposition": content_disposition(delivery.disposition, name),
    }


async def serve(
    request: web.Request,
    store: BlobStore,
    delivery: Delivery,
    now: datetime,
    *,
    before_send: Callable[[int, int, int], Awaitable[None]] | None = None,
    after_send: Callable[[int, int], Awaitable[None]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Answer GET or HEAD for the delivery (the hooks are :func:`serve_ranged`'s);
    ``headers``: :func:`headers_for` the delivery, made before (copied here)."""
    blob = delivery.blob

    def body(start: int, end: int) -> AsyncGenerator[bytes, None]:
        def read(offset: int, length: int) -> AsyncIterator[bytes]:
            return store.get(blob.blob_key, offset, length)

        return decrypt_range(
            delivery.key,
            delivery.item_id,
            blob.variant,
            read,
            blob.blob_size,
            start,
            end,
            ciphers=delivery.ciphers,
        )

    return await serve_ranged(
        request,
        blob.plaintext_size,
        headers_for(delivery, now) if headers is None else dict(headers),
        body,
        before_send=before_send,
        after_send=after_send,
    )


async def serve_ranged(
    request: web.Request,
    size: int,
    headers: dict[str, str],
    body: Callable[[int, int], AsyncGenerator[bytes, None]],
    *,
    before_send: Callable[[int, int, int], Awaitable[None]] | None = None,
    after_send: Callable[[int, int], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """GET or HEAD of ``size`` bytes that ``body(start, end)`` produces, with
    the conditional and range headers of the module's docstring against
    ``headers["ETag"]``.

    The first piece of the body (all of a small one) is read and verified
    before anything else: a blob whose first segment fails is refused with
    ``integrity_error`` before a status line is sent. Then
    ``before_send(status, start, end)`` runs (the audit record, a handover's
    claim): if it raises, nothing is sent. ``after_send(meant, sent)`` runs
    when a body answer ends, however it ends: the bytes it was to send and
    those that went out (fewer when the client went away).

    An answer that cannot be finished once its headers are out ends at once
    (see :class:`Ending`): a client that went away is ``aborted`` (logged at
    info, not an error); a failure of the body (a later segment that does not
    verify, storage gone) closes the connection, so the client sees a short
    body and a closed connection rather than waiting for bytes that never
    come.
    """
    etag = headers["ETag"]
    if_match = request.headers.get("If-Match")
    if if_match is not None and not _matches(if_match, etag, weak=False):
        return _refusal(
            412,
            "conflict",
            "The content is not the version If-Match names; fetch it again without If-Match.",
            _without_body(headers),
        )
    if _matches(request.headers.get("If-None-Match"), etag, weak=True):
        return web.Response(status=304, headers=_without_body(headers))
    wanted = parse_range(request.headers.get("Range"), size)
    if_range = request.headers.get("If-Range")
    if wanted is not None and if_range is not None and not _matches(if_range, etag, weak=False):
        wanted = None  # the client's copy is another version: send it whole
    if isinstance(wanted, str):
        headers = _without_body(headers)
        headers["Content-Range"] = f"bytes */{size}"
        return _refusal(416, "invalid_input", wanted, headers)
    start, end = wanted if isinstance(wanted, tuple) else (0, size)
    status = 206 if isinstance(wanted, tuple) else 200
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        if before_send is not None:
            await before_send(status, start, end)
        response: web.StreamResponse = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        await response.write_eof()
        return response
    small = end - start <= SMALL_BODY
    chunks = body(start, end)
    try:
        # Verified before the answer is decided: a bad header, a swapped blob
        # or a wrong key is a clean error, not a 200 that stops at byte 0.
        first = await _gather(chunks) if small else await anext(chunks, b"")
    except IntegrityError as exc:
        await chunks.aclose()
        await _damaged(request, exc, end - start, None)
        raise
    except BaseException:
        await chunks.aclose()
        raise
    try:
        if before_send is not None:
            await before_send(status, start, end)
    except BaseException:
        await chunks.aclose()
        raise
    sent = 0
    response = web.StreamResponse(status=status, headers=headers)
    try:
        if small:
            # A thumbnail: headers and body leave in one write.
            response = web.Response(status=status, headers=headers, body=first)
            await response.prepare(request)
            await response.write_eof()
            sent = end - start
            return response
        response.content_length = end - start
        await response.prepare(request)
        await response.write(first)
        sent += len(first)
        async for chunk in chunks:
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response
    except ConnectionError:
        # The client went away (a video seek, a cancelled download): its own
        # doing, so info, not an error, and no traceback.
        request[ENDED] = Ending("aborted", end - start, sent)
        log.info("aborted by the client after %d of %d bytes", sent, end - start)
        return response
    except KluisError as exc:
        if isinstance(exc, IntegrityError):
            await _damaged(request, exc, end - start, sent)
        else:
            request[ENDED] = Ending(exc.code, end - start, sent, exc.status)
            log.error("%s after %d of %d bytes; connection closed", exc.code, sent, end - start)
        _close(request)
        return response
    except Exception:
        request[ENDED] = Ending("internal_error", end - start, sent, 500)
        log.exception("answer failed after %d of %d bytes; connection closed", sent, end - start)
        _close(request)
        return response
    finally:
        await chunks.aclose()
        if after_send is not None:
            await asyncio.shield(after_send(end - start, sent))


@dataclasses.dataclass(frozen=True)
class Ending:
    """How a body answer ended before its last byte (``request[ENDED]``).

    ``outcome`` is ``aborted`` (the client went away) or the code of the
    failure that ended it (``integrity_error``, ``storage_unavailable``);
    ``status`` is the status the failure stands for (None for ``aborted``);
    ``in_body``: False when it ended before the headers (a clean error).
    The metrics and the audit record read it.
    """

    outcome: str
    meant: int
    sent: int
    status: int | None = None
    in_body: bool = True


ENDED = web.RequestKey("delivery_ended", Ending)
#: Where a blob that fails its check is put on record (vault/items/damage.py).
DAMAGE = web.AppKey("damage", DamageLog)


async def _damaged(request: web.Request, exc: IntegrityError, meant: int, sent: int | None) -> None:
    """Log, mark and note a blob that failed its check: before the headers
    (``sent`` None) or after ``sent`` bytes of the body."""
    request[ENDED] = Ending("integrity_error", meant, sent or 0, 500, in_body=sent is not None)
    item, variant = getattr(exc, "item_id", None), getattr(exc, "variant", None)
    where = (
        "before the answer" if sent is None else f"after {sent} of {meant} bytes; connection closed"
    )
    log.error(
        "integrity_error: stored blob of item %s (%s) failed its check %s; "
        "marked for 'kluis storage verify'",
        item or "?",
        variant or "?",
        where,
    )
    register = request.app.get(DAMAGE)
    if register is not None and item is not None and variant is not None:
        await asyncio.shield(register.found(item, variant))


def _close(request: web.Request) -> None:
    """End the connection now: what was written goes out, then the client
    reads the end of the stream (no keep-alive, no waiting for more)."""
    request.protocol.force_close()
    transport = request.transport
    if transport is not None:
        transport.close()


async def _gather(chunks: AsyncGenerator[bytes, None]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def _matches(header: str | None, etag: str, *, weak: bool) -> bool:
    """Whether a list of entity tags names ``etag`` (a strong tag of ours).

    Weak comparison ignores a ``W/`` prefix; strong comparison never matches
    a weak tag (RFC 9110 §8.8.3.2). ``*`` matches any current content.
    """
    if header is None:
        return False
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return True
    for tag in tags:
        if tag.startswith("W/"):
            if weak and tag[2:] == etag:
                return True
        elif tag == etag:
            return True
    return False


def _refusal(status: int, code: str, message: str, headers: dict[str, str]) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = {**headers, "Content-Type": "application/json", "Cache-Control": "no-store"}
    return web.Response(status=status, headers=headers, body=body)


def _without_body(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("Content-Type", "Content-Disposition")}
