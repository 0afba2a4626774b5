"""Turning a JPEG upright without decoding it: TurboJPEG's lossless transform.

A rotation or flip of the DCT coefficients, as ``jpegtran -perfect`` does:
the pixels are exactly those the camera encoded, in the right place. It is
only lossless when the image is a whole number of MCUs (8 or 16 px) in the
directions that move; otherwise :func:`upright` answers None and the caller
decodes and re-encodes instead (docs/media.md). TurboJPEG comes from the
system (Debian's ``libturbojpeg0``, installed by scripts/ensure-media and by
the image); without it :func:`available` is False and the same fallback
applies.

The call runs in C with the GIL released; a handle is made per call (it is
cheap, and a handle must not be shared between threads).

May touch: only the bytes it is given and the TurboJPEG library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: EXIF orientation -> TurboJPEG transform operation (TJXOP_*).
_OPERATIONS = {2: 1, 3: 6, 4: 2, 5: 3, 6: 5, 7: 4, 8: 7}
_TJXOPT_PERFECT, _TJXOPT_COPYNONE = 1, 64
#: Stop at the first warning (a damaged file is not silently patched) and cap
#: the scans of a progressive JPEG (a crafted file with thousands is slow).
_TJFLAG_STOPONWARNING, _TJFLAG_LIMITSCANS = 8192, 32768


class _Region(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("x", "y", "w", "h")]


class _Transform(ctypes.Structure):
    _fields_ = [
        ("r", _Region),
        ("op", ctypes.c_int),
        ("options", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("customFilter", ctypes.c_void_p),
    ]


@functools.cache
def _library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.tjInitTransform.restype = ctypes.c_void_p
    lib.tjInitTransform.argtypes = []
    lib.tjTransform.restype = ctypes.c_int
    lib.tjTransform.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(_Transform),
        ctypes.c_int,
    ]
    lib.tjFree.restype = None
    lib.tjFree.argtypes = [ctypes.POINTER(ctypes.c_ubyte)]
    lib.tjDestroy.restype = ctypes.c_int
    lib.tjDestroy.argtypes = [ctypes.c_void_p]
    return lib


def available() -> bool:
    return _library() is not None


def upright(data: bytes, orientation: int) -> bytes | None:
    """``data`` turned by its EXIF ``orientation`` losslessly, or None if that is impossible."""
    lib = _library()
    operation = _OPERATIONS.get(orientation)
    if lib is None or operation is None:
        return None
    handle = lib.tjInitTransform()
    if not handle:
        return None
    try:
        transform = _Transform(op=operation, options=_TJXOPT_PERFECT | _TJXOPT_COPYNONE)
        out = ctypes.POINTER(ctypes.c_ubyte)()
        size = ctypes.c_ulong(0)
        flags = _TJFLAG_STOPONWARNING | _TJFLAG_LIMITSCANS
        failed = lib.tjTransform(
            handle, data, len(data), 1, ctypes.byref(out), ctypes.byref(size), transform, flags
        )
        try:
            if failed or not out:
                return None
            return ctypes.string_at(out, size.value)
        finally:
            if out:
                lib.tjFree(out)
    finally:
        lib.tjDestroy(handle)
