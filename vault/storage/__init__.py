"""Blob storage: the :class:`BlobStore` protocol and its two backends.

``local`` (:class:`LocalDiskStore`) is the embedded default; ``s3``
(:class:`S3Store`) talks to MinIO or any S3. Both pass the same conformance
suite in ``tests/storage/``.
"""

from __future__ import annotations

from vault.config import Settings
from vault.storage.base import (
    BlobNotFound,
    BlobStore,
    StorageUnavailable,
    new_blob_key,
)
from vault.storage.local import LocalDiskStore
from vault.storage.s3 import S3Store

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "LocalDiskStore",
    "S3Store",
    "StorageUnavailable",
    "new_blob_key",
    "open_store",
]


async def open_store(settings: Settings) -> BlobStore:
    """Open the configured store; ``StorageUnavailable`` if it cannot be reached."""
    if settings.storage.backend == "s3":
        return await S3Store.open(settings.storage)
    return await LocalDiskStore.open(settings.storage_path)
