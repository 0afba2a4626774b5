"""Blobs in S3 or MinIO, for deployments that scale out.

Built on the ``minio`` client, whose calls block: each runs in the default
executor. Uploads of unknown length go through ``put_object(length=-1)``,
which sends one PUT for a blob smaller than a part and a multipart upload
otherwise (aborted by the client on any failure, so nothing half-written
becomes visible). The client reads its parts from a small bridge that pulls
chunks from the async input stream on the event loop, so memory stays at
about ``(parallel_parts + 1) × part_size`` whatever the blob's size.

Timeouts and a single retry keep an unreachable store from hanging a request:
it fails with ``StorageUnavailable`` within about two timeouts.

Settings that cannot work are configuration errors, found before anything is
sent: a bucket name S3 refuses, an endpoint that is not ``host[:port]``. At
:meth:`S3Store.open` (``kluis init``, a start) a store that cannot be reached,
refuses the credentials or lacks the bucket says so in one line naming the
setting to look at.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any, BinaryIO, TypeVar, cast

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteError, DeleteObject
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name

from vault.config import StorageSettings
from vault.errors import ConfigError
from vault.executors import STORAGE
from vault.storage.base import (
    READ_CHUNK,
    BlobNotFound,
    StorageUnavailable,
    check_key,
    check_range,
)

log = logging.getLogger(__name__)
# Its "Retrying ..." lines repeat what the store's own error line says.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

_T = TypeVar("_T")
_MISSING = frozenset({"NoSuchKey", "NoSuchObject"})
_REFUSED = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"})
_LIST_PAGE = 1000
#: Keys per DeleteObjects request (S3 takes at most 1,000), and such requests
#: at once (minio's pool keeps ten connections).
_DELETE_CHUNK = 1000
_PARALLEL_DELETES = 4


class _Aborted(Exception):
    """Raised inside the upload thread when the async side gave up."""


class _StreamBridge:
    """A blocking ``read(n)`` over an async iterator living on the event loop."""

    def __init__(self, stream: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._iter = aiter(stream)
        self._loop = loop
        self._buffer = bytearray()
        self._eof = False
        self.size = 0
        self.aborted = threading.Event()
        self.error: BaseException | None = None

    async def _next(self) -> bytes | None:
        try:
            return await anext(self._iter)
        except StopAsyncIteration:
            return None

    def read(self, n: int = -1) -> bytes:
        # minio asks for a whole part at a time; answering with a whole part
        # (not chunk by chunk) keeps its `part += data` loop linear.
        while not self._eof and (n < 0 or len(self._buffer) < n):
            if self.aborted.is_set():
                raise _Aborted()
            future = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            try:
                chunk = future.result()
            except BaseException as exc:
                self.error = exc
                raise _Aborted() from exc
            if chunk is None:
                self._eof = True
            else:
                self._buffer += chunk
                self.size += len(chunk)
        take = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        out = bytes(self._buffer[:take])
        del self._buffer[:take]
        return out


class S3Store:
    """A :class:`~vault.storage.base.BlobStore` on an S3 bucket."""

    def __init__(self, settings: StorageSettings) -> None:
        check_settings(settings)
        timeout = urllib3.Timeout(connect=settings.timeout_seconds, read=settings.timeout_seconds)
        retries = urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504))
        http = urllib3.PoolManager(timeout=timeout, retries=retries, maxsize=16)
        self._client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key.reveal(),
            secret_key=settings.s3_secret_key.reveal(),
            secure=settings.s3_secure,
            region=settings.s3_region or None,
            http_client=http,
        )
        self._endpoint = settings.s3_endpoint
        self._opened = False
        self._http = http
        self.bucket = settings.s3_bucket
        self._part_size = settings.s3_part_size_mb * 1024 * 1024
        self._parallel = settings.s3_parallel_parts
        self._create_bucket = settings.s3_create_bucket

    @classmethod
    async def open(cls, settings: StorageSettings) -> S3Store:
        """The store, its bucket there (made if ``s3_create_bucket``); else one
        line naming the setting to look at."""
        store = cls(settings)
        try:
            exists = await store._call(store._client.bucket_exists, store.bucket)
            if not exists and not store._create_bucket:
                raise ConfigError(
                    f"The bucket {store.bucket!r} (storage.s3_bucket) does not exist at "
                    f"{store._endpoint}; create it, or set storage.s3_create_bucket = true."
                )
            if not exists:
                try:
                    await store._call(store._client.make_bucket, store.bucket)
                except StorageUnavailable:
                    # Another instance may have created it in between.
                    if not await store._call(store._client.bucket_exists, store.bucket):
                        raise
        except StorageUnavailable as exc:
            raise store._opening_failed(exc) from None
        store._opened = True
        return store

    def _opening_failed(self, exc: StorageUnavailable) -> StorageUnavailable:
        cause = exc.__cause__
        if isinstance(cause, S3Error) and cause.code in _REFUSED:
            return StorageUnavailable(
                f"The S3 store at {self._endpoint} refused the credentials ({cause.code}); "
                "check storage.s3_access_key and storage.s3_secret_key, and that the user "
                f"may use the bucket {self.bucket!r}."
            )
        if isinstance(cause, S3Error):
            return StorageUnavailable(
                f"The S3 store at {self._endpoint} answered {cause.code} for the bucket "
                f"{self.bucket!r} (storage.s3_bucket)."
            )
        return StorageUnavailable(
            f"The S3 store at {self._endpoint} (storage.s3_endpoint) cannot be reached "
            f"({_reason(cause)}); check the address, storage.s3_secure, and that it runs."
        )

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return await STORAGE.run(fn, *args, **kwargs)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise BlobNotFound() from None
            raise self._unavailable(exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> StorageUnavailable:
        if self._opened:  # before, open() says it in one line of its own
            log.warning("S3 blob store error: %s", type(exc).__name__)
        return StorageUnavailable()

    async def put(self, key: str, stream: AsyncIterable[bytes]) -> int:
        check_key(key)
        loop = asyncio.get_running_loop()
        bridge = _StreamBridge(stream, loop)

        def upload() -> None:
            self._client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, bridge),
                length=-1,
                part_size=self._part_size,
                num_parallel_uploads=self._parallel,
            )

        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                upload()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

        # A thread of its own, not the storage pool: it spends its life
        # waiting on the event loop for chunks, and a producer that itself
        # reads through the executor must never find every worker taken.
        threading.Thread(target=run, name="kluis-s3-put", daemon=True).start()
        wrapped = asyncio.wrap_future(future)
        try:
            await asyncio.shield(wrapped)
        except asyncio.CancelledError:
            # The thread may be waiting on the loop for the next chunk: tell it
            # to stop, wait until the client has aborted the upload, and remove
            # anything that completed in the race.
            bridge.aborted.set()
            await asyncio.wait([wrapped])
            await self.delete(key)
            raise
        except _Aborted:
            if bridge.error is not None:
                raise bridge.error from None
            raise
        except S3Error as exc:
            raise self._unavailable(exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return bridge.size

    async def get(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        check_key(key)
        check_range(offset, length)
        if length == 0:
            await self.size(key)  # still report a missing blob
            return
        try:
            response = await self._call(
                self._client.get_object, self.bucket, key, offset=offset, length=length or 0
            )
        except StorageUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "InvalidRange":
                await self.size(key)
                return  # offset at or past the end: nothing to read
            raise
        try:
            while True:
                chunk = await self._call(response.read, READ_CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def size(self, key: str) -> int:
        check_key(key)
        stat = await self._call(self._client.stat_object, self.bucket, key)
        return int(stat.size or 0)

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except BlobNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._call(self._client.remove_object, self.bucket, key)

    async def delete_many(self, keys: Sequence[str]) -> list[str]:
        for key in keys:
            check_key(key)
        limit = asyncio.Semaphore(_PARALLEL_DELETES)

        def remove(chunk: Sequence[str]) -> list[DeleteError]:
            # The answer is lazy: the request is sent while it is read.
            return list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in chunk]))

        async def one(chunk: Sequence[str]) -> tuple[list[str], str | None]:
            async with limit:
                try:
                    errors = await self._call(remove, chunk)
                except (StorageUnavailable, BlobNotFound):
                    return [], None  # _call logged it
            refused = [e for e in errors if e.code not in _MISSING]
            if not refused:
                return list(chunk), None
            if any(e.name is None for e in refused):
                return [], refused[0].code  # cannot tell which: keep them all
            kept = {e.name for e in refused}
            return [key for key in chunk if key not in kept], refused[0].code

        answers = await asyncio.gather(
            *(
                one(keys[start : start + _DELETE_CHUNK])
                for start in range(0, len(keys), _DELETE_CHUNK)
            )
        )
        reasons = sorted({reason for _, reason in answers if reason is not None})
        if reasons:
            log.warning("S3 blob store refused deletes: %s", ", ".join(reasons))
        return [key for done, _ in answers for key in done]

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        objects = await self._call(
            self._client.list_objects, self.bucket, prefix=prefix or None, recursive=True
        )
        while True:
            page = await self._call(lambda: list(itertools.islice(objects, _LIST_PAGE)))
            if not page:
                return
            for obj in page:
                if obj.object_name is not None:
                    yield obj.object_name

    async def check(self) -> None:
        if not await self._call(self._client.bucket_exists, self.bucket):
            log.warning("S3 bucket is missing")
            raise StorageUnavailable()

    async def close(self) -> None:
        self._http.clear()


def check_settings(settings: StorageSettings) -> None:
    """``ConfigError`` for a bucket name or endpoint that cannot work (nothing is sent)."""
    try:
        check_bucket_name(settings.s3_bucket, strict=True, s3_check=True)
    except ValueError as exc:
        raise ConfigError(
            f"Setting storage.s3_bucket ({settings.s3_bucket!r}) is not a bucket name S3 "
            f"accepts ({exc}): 3 to 63 lower-case letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit."
        ) from None
    try:
        Minio(settings.s3_endpoint, secure=settings.s3_secure)
    except ValueError as exc:
        raise ConfigError(
            f"Setting storage.s3_endpoint ({settings.s3_endpoint!r}) is not usable: {exc}; "
            "give host:port, without http:// (storage.s3_secure chooses https)."
        ) from None


def _reason(cause: BaseException | None) -> str:
    """The innermost reason of a connection failure, without addresses or secrets."""
    while cause is not None:
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException):
            cause = reason
            continue
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        if cause.__cause__ is None and cause.__context__ is None:
            break
        cause = cause.__cause__ or cause.__context__
    return type(cause).__name__ if cause is not None else "no answer"
