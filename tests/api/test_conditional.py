"""Conditional and range answers of links, per RFC 9110 and as nginx gives them.

One table of requests (each row citing its RFC 9110 section) is sent to a
link of the vault and to a private nginx (Debian's, started here on a free
loopback port) serving the same bytes as a static file, each with its own
ETag. Both must give the row's status and Content-Range. Where the two may
differ by choice, the row is left out and docs/api-notes.md says why
(several ranges in one request: nginx sends multipart/byteranges, the vault
the whole content, which RFC 9110 §14.2 allows).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, stored, upload
from tests.helpers.world import world
from tests.servers import REQUIRE_SERVERS, free_port

#: (name, RFC 9110 section, request headers with {etag} and {size}, status, Content-Range)
MATRIX = [
    ("plain", "§15.3.1", {}, 200, None),
    ("current tag", "§13.1.2", {"If-None-Match": "{etag}"}, 304, None),
    (
        "weak form of the current tag",
        "§13.1.2, weak comparison",
        {"If-None-Match": "W/{etag}"},
        304,
        None,
    ),
    ("another tag", "§13.1.2", {"If-None-Match": '"other"'}, 200, None),
    ("any", "§13.1.2", {"If-None-Match": "*"}, 304, None),
    ("list with the tag", "§13.1.2", {"If-None-Match": '"a", {etag}'}, 304, None),
    ("If-Match stale", "§13.1.1", {"If-Match": '"other"'}, 412, None),
    ("If-Match current", "§13.1.1", {"If-Match": "{etag}"}, 200, None),
    ("If-Match weak", "§13.1.1, strong comparison", {"If-Match": "W/{etag}"}, 412, None),
    ("If-Match any", "§13.1.1", {"If-Match": "*"}, 200, None),
    ("first ten bytes", "§14.1.2", {"Range": "bytes=0-9"}, 206, "bytes 0-9/{size}"),
    ("one byte", "§14.1.2", {"Range": "bytes=0-0"}, 206, "bytes 0-0/{size}"),
    ("from an offset", "§14.1.2", {"Range": "bytes=10-"}, 206, "bytes 10-{last}/{size}"),
    ("the last five", "§14.1.2 suffix", {"Range": "bytes=-5"}, 206, "bytes {tail5}-{last}/{size}"),
    ("past the end", "§15.5.17", {"Range": "bytes={size}-"}, 416, "bytes */{size}"),
    ("last before first", "§14.1.1 invalid", {"Range": "bytes=9-5"}, 416, "bytes */{size}"),
    ("end cut to the size", "§14.1.2", {"Range": "bytes=0-99999999"}, 206, "bytes 0-{last}/{size}"),
    ("another unit", "§14.2 ignored", {"Range": "items=0-9"}, 200, None),
    (
        "If-Range current",
        "§13.1.5",
        {"Range": "bytes=0-9", "If-Range": "{etag}"},
        206,
        "bytes 0-9/{size}",
    ),
    ("If-Range stale", "§13.1.5", {"Range": "bytes=0-9", "If-Range": '"other"'}, 200, None),
    (
        "If-Range weak",
        "§13.1.5 strong only",
        {"Range": "bytes=0-9", "If-Range": "W/{etag}"},
        200,
        None,
    ),
    ("304 before Range", "§13.2.2", {"Range": "bytes=0-9", "If-None-Match": "{etag}"}, 304, None),
    ("412 before Range", "§13.2.2", {"Range": "bytes=0-9", "If-Match": '"other"'}, 412, None),
]


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A private nginx serving a directory; yields (base URL, directory)."""
    binary = os.environ.get("VAULT_TEST_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(binary, os.X_OK):
        message = "no nginx; run scripts/ensure-nginx"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("nginx")
    (root / "www").mkdir()
    port = free_port()
    temps = " ".join(
        f"{kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (root / "nginx.conf").write_text(
        f"daemon off; master_process off; worker_processes 1; pid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'};\nevents {{ worker_connections 32; }}\n"
        f"http {{ access_log off; {temps}\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root / 'www'}; }} }}\n"
    )
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("nginx did not start: " + (root / "error.log").read_text())
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", root / "www"
    finally:
        process.terminate()
        process.wait(10)


def _fill(headers: dict[str, str], etag: str, size: int) -> dict[str, str]:
    values = {"etag": etag, "size": str(size), "last": str(size - 1), "tail5": str(size - 5)}
    return {k: v.format(**values) for k, v in headers.items()}


@pytest.mark.parametrize(("name", "section", "headers", "status", "content_range"), MATRIX)
def test_the_matrix_is_what_nginx_answers(
    nginx: tuple[str, Path],
    name: str,
    section: str,
    headers: dict[str, str],
    status: int,
    content_range: str | None,
) -> None:
    base, www = nginx
    data = jpeg_with_secrets() * 3
    (www / "photo.jpg").write_bytes(data)
    etag = httpx.get(f"{base}/photo.jpg").headers["ETag"]
    answer = httpx.get(f"{base}/photo.jpg", headers=_fill(headers, etag, len(data)))
    assert answer.status_code == status, (name, section)
    expected = (
        content_range.format(size=len(data), last=len(data) - 1, tail5=len(data) - 5)
        if content_range
        else None
    )
    if status in (206, 416):
        assert answer.headers.get("Content-Range") == expected, (name, section)


async def test_the_vault_answers_the_matrix(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    _, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    data = await stored(api, photo["id"], "original")
    size = len(data)
    link = await api.ok("POST", f"/v1/items/{photo['id']}/links", {}, w.parent)
    path = urlsplit(link["url"]).path
    etag = (await api.client.get(path)).headers["ETag"]
    for name, section, headers, status, content_range in MATRIX:
        response = await api.client.get(path, headers=_fill(headers, etag, size))
        body = await response.read()
        assert response.status == status, (name, section)
        expected = (
            content_range.format(size=size, last=size - 1, tail5=size - 5)
            if content_range
            else None
        )
        if status in (206, 416):
            assert response.headers.get("Content-Range") == expected, (name, section)
        if status == 206:
            first, last = (int(n) for n in expected.split()[1].split("/")[0].split("-"))  # type: ignore[union-attr]
            assert body == data[first : last + 1]
        if status == 200:
            assert body == data
        if status == 304:
            assert (body, response.headers["ETag"]) == (b"", etag)
        if status in (412, 416):
            # The JSON error body of API.md, with the code docs/api-notes.md names.
            error = json.loads(body)["error"]
            code = "conflict" if status == 412 else "invalid_input"
            assert (response.content_type, error["code"]) == ("application/json", code)
    # HEAD answers the same statuses and headers, without a body.
    response = await api.client.head(path, headers={"Range": f"bytes={size}-"})
    assert (response.status, response.headers["Content-Range"]) == (416, f"bytes */{size}")
    response = await api.client.head(path, headers={"If-None-Match": f"W/{etag}"})
    assert response.status == 304


async def test_a_refused_range_says_what_is_wrong_with_it(api: Api) -> None:
    # Status, code and Content-Range as docs/api-notes.md gives them; the
    # message tells a reversed range from one past the end.
    w = await world(api)
    await consent(api, w)
    _, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    size = len(await stored(api, photo["id"], "original"))
    link = await api.ok("POST", f"/v1/items/{photo['id']}/links", {}, w.parent)
    path = urlsplit(link["url"]).path
    said = {}
    for asked in ("bytes=50-10", f"bytes={size}-", "bytes=-0"):
        response = await api.client.get(path, headers={"Range": asked})
        error = (await response.json())["error"]
        assert (response.status, error["code"]) == (416, "invalid_input"), asked
        assert response.headers["Content-Range"] == f"bytes */{size}"
        said[asked] = error["message"]
    assert "outside" not in said["bytes=50-10"]
    assert "ends before it starts" in said["bytes=50-10"]
    assert f"bytes=10-50 or bytes=50-{size - 1}" in said["bytes=50-10"]
    assert f"past the end of the {size} bytes" in said[f"bytes={size}-"]
    assert "no bytes" in said["bytes=-0"]
