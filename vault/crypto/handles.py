"""Key handles: raw key bytes that cannot leak by accident.

A handle masks its ``repr``, refuses pickling and copying, and has no public
accessor for its bytes: only the recipes of :mod:`vault.crypto` read
``_material``. Business code holds a handle for one operation and passes it
back to a recipe.
"""

from __future__ import annotations

from typing import NoReturn

from vault.crypto._primitives import KEY_SIZE


class KeyHandle:
    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if len(material) != KEY_SIZE:
            raise ValueError("a key is 32 bytes")
        self._material = material

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (hidden)>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("key handles cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError("key handles cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("key handles cannot be copied")


class ItemKey(KeyHandle):
    """The random key of one stored item; its blobs' keys derive from it."""

    __slots__ = ()


class ChildKey(KeyHandle):
    """A child's data-encryption key for one category (a DEK)."""

    __slots__ = ()


class MasterKey(KeyHandle):
    """A key-encryption key held in memory by a software key provider."""

    __slots__ = ()


class MacKey(KeyHandle):
    """An HMAC-SHA256 key held in memory by a software key provider."""

    __slots__ = ()
