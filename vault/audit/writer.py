"""The audit writer process: the chain on a SQLite file, written outside the service.

The service's event loop shares one interpreter lock with every thread of
its process. A writer thread would take and give back that lock at each of
the dozen SQLite calls of a commit (each call releases it), and every
handover stalls the loop: with one event per link answered, that was a
third of the service's time. In a process of its own the writer costs the
loop two pipe messages per commit, as PostgreSQL's server costs it a round
trip on that database.

The process holds no key. It chains the drafts onto the head inside one
transaction (``BEGIN IMMEDIATE`` takes the database's write lock first, so
any number of writers keep one linear chain), sends the messages to sign
back over the pipe, the service signs them with the keyring's audit key, and
the process stores the signatures and commits. It ends when the service
closes the pipe, or goes away.

Frames are a 4-byte big-endian length and a JSON object::

    service -> writer   {"drafts": [...], "now": "<iso>", "every": n}
    writer  -> service  {"sign": ["<hex message>", ...]}
    service -> writer   {"signatures": ["<hex>", ...]}
    writer  -> service  {"seq": n, "checkpoints": [[seq, hash], ...]}  or  {"failed": "<error>"}

This module imports only the standard library, :mod:`vault.audit.events` and
the SQLite settings (:mod:`vault._sqlite`), so the process starts in a few
tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from vault._sqlite import PRAGMAS
from vault.audit.events import COLUMNS, HEAD_LABEL, chain, head_message

_LENGTH = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024

_LOCK_HEAD = "UPDATE audit_head SET id = 1 WHERE id = 1 RETURNING seq, hash"
_INSERT_EVENT = (
    f"INSERT INTO audit_events ({', '.join(COLUMNS)}) "  # noqa: S608 - the schema's columns
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)
_INSERT_SUBJECT = "INSERT INTO audit_subjects (child_id, seq) VALUES (?, ?)"
_INSERT_CHECKPOINT = "INSERT INTO audit_checkpoints (seq, hash, at, mac) VALUES (?, ?, ?, ?)"
_MOVE_HEAD = "UPDATE audit_head SET seq = ?, hash = ?, mac = ?, at = ? WHERE id = 1"

Sign = Callable[[bytes], bytes]
#: Where the vault package was loaded from, installed or not: the writer loads the same.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class WriterFailed(Exception):
    """The writer process could not commit (what went wrong is the message)."""


# -- the service's side -------------------------------------------------------


class WriterProcess:
    """The service's handle on its writer process, started at the first commit
    and again after it went away. One commit at a time (the caller's drain)."""

    def __init__(self, database: str) -> None:
        self._database = database
        self._process: asyncio.subprocess.Process | None = None

    async def commit(
        self, drafts: Sequence[Mapping[str, Any]], now: str, every: int, sign: Sign
    ) -> tuple[int, list[tuple[int, str]]]:
        """Chain and commit ``drafts``; the new head's seq and the checkpoints made."""
        try:
            process = await self._started()
            await _write_frame(process, {"drafts": drafts, "now": now, "every": every})
            reply = await _read_frame(process)
            if "sign" in reply:
                messages = [bytes.fromhex(m) for m in reply["sign"]]
                if not all(m.startswith(HEAD_LABEL) for m in messages):
                    raise ValueError("asked to sign something other than the chain's state")
                await _write_frame(process, {"signatures": [sign(m).hex() for m in messages]})
                reply = await _read_frame(process)
        except BaseException as exc:
            # Where the exchange stopped is unknown: the next commit starts afresh.
            await self._stop()
            if isinstance(exc, OSError | EOFError | ValueError | KeyError | TypeError):
                raise WriterFailed(type(exc).__name__) from exc
            raise
        if "failed" in reply:
            raise WriterFailed(str(reply["failed"]))
        return int(reply["seq"]), [(int(s), str(h)) for s, h in reply["checkpoints"]]

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _started(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vault.audit.writer",
            self._database,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        return self._process

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()


async def _write_frame(process: asyncio.subprocess.Process, message: Mapping[str, Any]) -> None:
    assert process.stdin is not None
    body = json.dumps(message, separators=(",", ":")).encode()
    process.stdin.write(_LENGTH.pack(len(body)) + body)
    await process.stdin.drain()


async def _read_frame(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    try:
        (length,) = _LENGTH.unpack(await process.stdout.readexactly(_LENGTH.size))
        if length > _MAX_FRAME:
            raise ValueError("frame too long")
        message = json.loads(await process.stdout.readexactly(length))
    except asyncio.IncompleteReadError:
        raise EOFError("the writer process went away") from None
    if not isinstance(message, dict):
        raise ValueError("not a frame")
    return message


# -- the writer's side --------------------------------------------------------


def serve(database: str, source: BinaryIO, sink: BinaryIO) -> None:
    """Commit each request from ``source`` until it ends; answers go to ``sink``."""
    conn = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma)

        def sign(messages: list[bytes]) -> list[str]:
            _send(sink, {"sign": [m.hex() for m in messages]})
            answer = _receive(source)
            signatures = None if answer is None else answer.get("signatures")
            if not isinstance(signatures, list) or len(signatures) != len(messages):
                raise ConnectionError("no signatures came back")
            return [str(s) for s in signatures]

        while (request := _receive(source)) is not None:
            try:
                reply = _commit(conn, request, sign)
            except sqlite3.Error as exc:
                reply = {"failed": type(exc).__name__}
            _send(sink, reply)
    finally:
        conn.close()


def _commit(
    conn: sqlite3.Connection, request: Mapping[str, Any], sign: Callable[[list[bytes]], list[str]]
) -> dict[str, Any]:
    now = _stored_time(request["now"])
    conn.execute("BEGIN IMMEDIATE")
    try:
        seq, digest = conn.execute(_LOCK_HEAD).fetchone()
        chained = chain(int(seq), str(digest), request["drafts"], int(request["every"]))
        conn.executemany(
            _INSERT_EVENT,
            [
                [_stored_time(row[c]) if c == "at" else row[c] for c in COLUMNS]
                for row in chained.rows
            ],
        )
        conn.executemany(_INSERT_SUBJECT, chained.subjects)
        points = [*chained.checkpoints, (chained.seq, chained.digest)]
        signatures = sign([head_message(s, d) for s, d in points])
        kept = zip(chained.checkpoints, signatures[:-1], strict=True)
        conn.executemany(_INSERT_CHECKPOINT, [(s, d, now, mac) for (s, d), mac in kept])
        conn.execute(_MOVE_HEAD, (chained.seq, chained.digest, signatures[-1], now))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return {"seq": chained.seq, "checkpoints": chained.checkpoints}


def _stored_time(canonical: str) -> str:
    """A canonical time (``2026-11-21T09:00:00.000000Z``) as SQLAlchemy keeps
    UTC times in SQLite (``2026-11-21 09:00:00.000000``), so both writers'
    rows read back the same."""
    return canonical.replace("T", " ").removesuffix("Z")


def _send(sink: BinaryIO, message: Mapping[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    sink.write(_LENGTH.pack(len(body)) + body)
    sink.flush()


def _receive(source: BinaryIO) -> dict[str, Any] | None:
    head = source.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None  # the service closed the pipe, or went away
    (length,) = _LENGTH.unpack(head)
    if length > _MAX_FRAME:
        raise ConnectionError("frame too long")
    message = json.loads(source.read(length))
    if not isinstance(message, dict):
        raise ConnectionError("not a frame")
    return message


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the service shuts down, then
    # closes the pipe, and this ends after the commit under way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
