"""Blob storage: the :class:`BlobStore` protocol and its two backends.

``local`` (:class:`LocalDiskStore`) is the embedded default; ``s3``
(:class:`S3Store`) talks to MinIO or any S3. Both pass the same conformance
suite in ``tests/storage/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vault.config import Settings
from vault.storage.base import (
    BlobNotFound,
    BlobStore,
    StorageUnavailable,
    new_blob_key,
)
from vault.storage.local import LocalDiskStore

if TYPE_CHECKING:
    from vault.storage.s3 import S3Store

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "LocalDiskStore",
    "S3Store",
    "StorageUnavailable",
    "check_settings",
    "new_blob_key",
    "open_store",
]


def __getattr__(name: str) -> object:
    # The S3 backend (minio, urllib3, pycryptodome: a tenth of a ``kluis``
    # command's imports) is imported when it is used, not on the local disk.
    if name == "S3Store":
        from vault.storage.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_settings(settings: Settings) -> None:
    """``ConfigError`` naming a storage setting that cannot work, before anything
    is created or sent (an S3 bucket name S3 refuses, an endpoint with a scheme)."""
    if settings.storage.backend == "s3":
        from vault.storage.s3 import check_settings as check_s3

        check_s3(settings.storage)


async def open_store(settings: Settings) -> BlobStore:
    """Open the configured store; ``StorageUnavailable`` if it cannot be reached."""
    if settings.storage.backend == "s3":
        from vault.storage.s3 import S3Store

        return await S3Store.open(settings.storage)
    return await LocalDiskStore.open(settings.storage_path)
