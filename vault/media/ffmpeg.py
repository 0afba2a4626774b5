"""Debian's ffmpeg and ffprobe as bounded child processes, fed and drained through pipes.

Decoding a user's video is the riskiest thing the vault does with one
(decoders are large C programs fed untrusted bytes), so it happens in a
process of its own, never in the server's:

* **bounded**: started through a small trampoline, a bare Python that sets
  the limits and then becomes ffmpeg (``execv``), so no code runs in a
  forked copy of the threaded server, as ``preexec_fn`` would:
  ``RLIMIT_AS`` (``video.memory_mb``), ``RLIMIT_CPU`` (the time limit times
  the threads, a backstop), a niceness (``video.nice``: link answers win
  the CPU on a busy host), ``-threads``; and a wall-clock limit
  (:attr:`Bounds.seconds`), after which it is killed;
* **tied to its parent**: ``PR_SET_PDEATHSIG`` makes the kernel kill it
  when the server dies, even by SIGKILL, so a killed worker leaves no
  transcode behind (the job is taken up again by another);
* **private**: its input is the decrypted original on its standard input
  and its output goes to its standard output, each a pipe: no plaintext
  file is written anywhere.

:func:`run` writes the source into the process while a consumer reads its
output and its error output is kept (the last few KB, for the reason of a
failure). Outcomes: the consumer's result; :class:`Rejected` when ffmpeg
itself said no (it exited with an error: the file is damaged or not what it
claims, retrying will not help); :class:`Stopped` when it was killed (the
time limit, a signal, the memory limit): worth another attempt.

May touch: the child processes it starts and their pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import shutil
import sys
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, TypeVar

from vault.sizes import size_text

T = TypeVar("T")

#: Sets the limits and the parent-death signal, then becomes ffmpeg.
#: argv: memory bytes, CPU seconds, niceness, then the program and its arguments.
_TRAMPOLINE = """
import ctypes, os, resource, signal, sys
memory, cpu, nice = (int(v) for v in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
os.nice(nice)
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() == 1:
    sys.exit(70)  # the parent died before the signal was set
os.execv(sys.argv[4], sys.argv[4:])
"""
#: Input options: the pipe is the only protocol the demuxer may open, so no
#: reference inside a file (a MOV's data reference, which ffmpeg follows only
#: when asked, or anything else) reaches a file or the network.
NO_NETWORK = ("-protocol_whitelist", "pipe")
#: Bytes of error output kept for a failure's reason.
_ERRORS_KEPT = 8192
_CHUNK = 256 * 1024
#: "[hevc @ 0x55d0c2a4b5c0] " and the like: where in ffmpeg, not what.
_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


class MediaToolMissing(Exception):
    """ffmpeg or ffprobe is not installed (scripts/ensure-media installs them)."""


class Rejected(Exception):
    """ffmpeg refused the input: damaged, cut short, or not what it claims."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stopped(Exception):
    """ffmpeg was stopped before it finished: the time limit, a signal, memory."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Bounds:
    threads: int
    nice: int
    memory_bytes: int
    seconds: float


def program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaToolMissing(f"{name} is not installed; install Debian's ffmpeg package.")
    return path


def last_error(errors: bytes) -> str:
    """The last line ffmpeg wrote to its error output, without its source prefix."""
    lines = [line.strip() for line in errors.decode("utf-8", "replace").splitlines()]
    lines = [_PREFIX.sub("", line) for line in lines if line]
    return lines[-1][:200] if lines else "no message"


async def _feed(stdin: asyncio.StreamWriter, source: AsyncIterable[bytes]) -> None:
    try:
        async for chunk in source:
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return  # it read all it wanted (a poster needs the first second only)
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            stdin.close()
            # Shielded: a cancelled wait would cancel the protocol's own future, which
            # Python 3.11 then fails to set when the pipe closes (an error on the loop).
            closing = asyncio.ensure_future(stdin.wait_closed())
            closing.add_done_callback(_retrieved)
            await asyncio.shield(closing)


def _retrieved(task: asyncio.Future[None]) -> None:
    """Take a finished task's outcome, so an error nobody awaited is not logged."""
    if not task.cancelled():
        task.exception()


async def _errors(stderr: asyncio.StreamReader) -> bytes:
    kept = b""
    while chunk := await stderr.read(_CHUNK):
        kept = (kept + chunk)[-_ERRORS_KEPT:]
    return kept


async def run(
    name: str,
    args: list[str],
    bounds: Bounds,
    source: AsyncIterable[bytes],
    consume: Callable[[asyncio.StreamReader], Awaitable[T]],
) -> T:
    """Run ``name`` (``ffmpeg``/``ffprobe``) with ``args``, ``source`` on its
    standard input, ``consume`` reading its standard output."""
    cpu = int(bounds.seconds * bounds.threads) + 10
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        _TRAMPOLINE,
        str(bounds.memory_bytes),
        str(cpu),
        str(bounds.nice),
        program(name),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin
    assert process.stdout
    assert process.stderr
    feed = asyncio.create_task(_feed(process.stdin, source))
    errors = asyncio.create_task(_errors(process.stderr))
    try:
        async with asyncio.timeout(bounds.seconds):
            result = await consume(process.stdout)
            # A source that failed (storage, integrity) is the cause, whatever ffmpeg made of
            # the input ending early: its error comes first.
            await feed
            kept = await errors
            status = await process.wait()
    except TimeoutError:
        raise Stopped(
            f"{name} did not finish within the time limit ({bounds.seconds:.0f} s)"
        ) from None
    finally:
        feed.cancel()
        errors.cancel()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        # No task of this run outlives it (the feed ends once its pipe is closed).
        await asyncio.wait({feed, errors}, timeout=5)
    if status < 0:
        raise Stopped(f"{name} was stopped by signal {-status}")
    if status == 70:
        raise Stopped(f"{name} could not be started under its limits")
    if status != 0:
        message = last_error(kept)
        if "Cannot allocate memory" in message:
            raise Stopped(f"{name} ran out of its memory limit ({message})")
        raise Rejected(message)
    return result


async def read_all(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Everything on ``stream``, at most ``limit`` bytes (more: :class:`Rejected`)."""
    data = bytearray()
    while chunk := await stream.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise Rejected(f"the output is larger than the {size_text(limit)} expected")
    return bytes(data)


@dataclasses.dataclass(frozen=True)
class Probe:
    """What ffprobe read of a video's first streams."""

    duration: float | None
    video: dict[str, Any] | None
    audio: dict[str, Any] | None

    @property
    def size(self) -> tuple[int, int]:
        """Width and height as shown (a quarter turn swaps them)."""
        if self.video is None:
            return 0, 0
        width, height = int(self.video.get("width") or 0), int(self.video.get("height") or 0)
        return (height, width) if abs(self.rotation) % 180 == 90 else (width, height)

    @property
    def rotation(self) -> int:
        for side in (self.video or {}).get("side_data_list", []):
            if "rotation" in side:
                return int(side["rotation"])
        return 0


async def probe(
    source: AsyncIterable[bytes], input_format: str, bounds: Bounds, name: str = "ffprobe"
) -> Probe:
    """ffprobe (``name``) on the stream's beginning (it stops reading when it knows)."""
    args = [
        *("-v", "error", "-hide_banner", "-print_format", "json"),
        *("-show_format", "-show_streams", "-f", input_format, *NO_NETWORK, "-i", "pipe:0"),
    ]
    out = await run(name, args, bounds, source, lambda s: read_all(s, 4 * 1024 * 1024))
    try:
        found = json.loads(out)
    except ValueError:
        raise Rejected("ffprobe gave an unreadable answer") from None
    streams = found.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _number(found.get("format", {}).get("duration"))
    if duration is None and video is not None:
        duration = _number(video.get("duration"))
    return Probe(duration, video, audio)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
