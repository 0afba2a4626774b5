"""Hostile uploads refused as early as possible, with a real socket client.

A vault served as ``kluis serve`` serves it, with one-second header and body
time-outs; the client writes bytes by hand (and slowly where that is the
point), as a slow or hostile client would. Issue 18, item 3.
"""

from __future__ import annotations

import json
import select as readiness
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.api.served import Served, served_vault
from tests.files import MP4_HEAD
from tests.helpers.data import pattern
from vault.api.resources import DB
from vault.db.schema import items

TIMEOUT = 1.0
BOUNDARY = b"kluisgrens"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_vault(
        tmp_path_factory.mktemp("early") / "data",
        header_timeout_seconds=TIMEOUT,
        body_timeout_seconds=TIMEOUT,
    ) as vault:
        yield vault


def _connect(served: Served) -> socket.socket:
    where = urlsplit(served.base)
    sock = socket.create_connection((where.hostname, where.port), timeout=10)
    return sock


def _head(served: Served, length: int, content_type: str, path: str = "", token: str = "") -> bytes:
    path = path or f"/v1/children/{served.w.child}/items"
    token = token or served.w.staff
    return (
        f"POST {path} HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _part(name: str, data: bytes, extra: str = "") -> bytes:
    return (
        b"--"
        + BOUNDARY
        + f'\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n'.encode()
        + b"\r\n"
        + data
        + b"\r\n"
    )


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one answer (its Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def _items(served: Served) -> int:
    async def count() -> int:
        async with served.app[DB].connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(items)) or 0)

    return served.run(count())


def test_a_content_length_over_every_cap_is_refused_before_the_body(served: Served) -> None:
    with _connect(served) as sock:
        started = time.monotonic()
        sock.sendall(
            _head(served, 5 * 1024**4, f"multipart/form-data; boundary={BOUNDARY.decode()}")
        )
        status, _, body = _answer(sock)
        assert (status, json.loads(body)["error"]["code"]) == (413, "too_large")
        assert time.monotonic() - started < 2


def test_a_content_length_over_the_kinds_cap_is_refused_once_meta_is_read(served: Served) -> None:
    # 100 MB is under the video cap (4 GB) but over the photo cap (40 MB):
    # the answer comes once 'meta' is read, while the file has only begun.
    # (aiohttp reads a boundary's length past a part to know that it ended,
    # so the file trickles in small pieces until the answer is there.)
    head = _part("meta", b'{"kind": "photo"}') + (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"'
        b"\r\n\r\n\xff\xd8\xff"
    )
    with _connect(served) as sock:
        sock.sendall(
            _head(served, 100_000_000, f"multipart/form-data; boundary={BOUNDARY.decode()}")
        )
        sock.sendall(head)
        started, sent = time.monotonic(), 0
        while not readiness.select([sock], [], [], 0.1)[0]:
            sock.sendall(b"0" * 256)
            sent += 256
            assert time.monotonic() - started < 3, "no answer while the file trickled in"
        status, _, body = _answer(sock)
        assert (status, json.loads(body)["error"]["code"]) == (413, "too_large")
        assert "41,943,040 bytes (40 MiB)" in json.loads(body)["error"]["message"]
        assert sent < 16 * 1024


def test_a_second_file_part_is_refused_and_nothing_is_stored(served: Served) -> None:
    before = _items(served)
    video = MP4_HEAD + pattern(4096)
    body = (
        _part("meta", b'{"kind": "video"}')
        + _part("file", video, '; filename="a.mp4"')
        + _part("file", video, '; filename="b.mp4"')
        + b"--"
        + BOUNDARY
        + b"--\r\n"
    )
    with _connect(served) as sock:
        sock.sendall(_head(served, len(body), f"multipart/form-data; boundary={BOUNDARY.decode()}"))
        sock.sendall(body)
        status, _, answer = _answer(sock)
    assert (status, json.loads(answer)["error"]["code"]) == (400, "invalid_input")
    assert _items(served) == before


def test_a_client_that_trickles_its_request_head_is_cut_off(served: Served) -> None:
    with _connect(served) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: vault\r\n")
        cut = False
        for _ in range(20):  # one header line every 0.3 s: never a whole head
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            if _closed_within(sock, 0.3):
                cut = True
                break
        assert cut, "the server kept a connection whose head never ended"
        assert time.monotonic() - started < TIMEOUT + 2


def test_a_body_that_stops_arriving_is_cut_with_408(served: Served) -> None:
    with _connect(served) as sock:
        sock.sendall(_head(served, 1000, "application/json", "/v1/locations", served.admin))
        sock.sendall(b'{"name": "Half')
        started = time.monotonic()
        status, headers, body = _answer(sock)
        assert (status, json.loads(body)["error"]["code"]) == (408, "request_timeout")
        assert headers.get("connection", "").lower() == "close"
        assert TIMEOUT - 0.2 < time.monotonic() - started < TIMEOUT + 2
        assert _closed_within(sock, 3)  # after aiohttp's lingering second


def test_a_slow_but_steady_video_upload_succeeds(served: Served) -> None:
    # 1.5 MB in 48 pieces with 0.1 s between them: five times the time-outs
    # in all, but never a second without bytes.
    video = MP4_HEAD + pattern(1_500_000)
    body = (
        _part("meta", b'{"kind": "video", "title": "Zwemles"}')
        + _part("file", video, '; filename="zwemles.mp4"')
        + b"--"
        + BOUNDARY
        + b"--\r\n"
    )
    pieces = [body[i : i + 32768] for i in range(0, len(body), 32768)]
    with _connect(served) as sock:
        sock.sendall(_head(served, len(body), f"multipart/form-data; boundary={BOUNDARY.decode()}"))
        started = time.monotonic()
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.1)
        status, _, answer = _answer(sock)
        took = time.monotonic() - started
    assert status == 201, answer
    assert json.loads(answer)["size"] == len(video)
    assert took > 4 * TIMEOUT
