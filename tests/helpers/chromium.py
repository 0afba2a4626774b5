"""Headless Chromium asked, over its DevTools protocol, whether a video plays,
and what a page shows (:func:`render`: its text and a screenshot).

``--dump-dom`` and ``--screenshot`` take their picture at the page's load,
before a video has played a frame; the DevTools protocol lets the test wait
for what a parent would see: the playing position moving past half a second.
Both start Chromium and talk to it through one :func:`devtools`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

#: Resolves with "played <seconds>", "error <code> <message>" or "stuck …".
_PLAY = """new Promise((done) => {
  const v = document.createElement('video');
  v.muted = true; v.autoplay = true; v.playsInline = true;
  v.addEventListener('timeupdate', () => {
    if (v.currentTime > 0.5) done('played ' + v.currentTime);
  });
  v.addEventListener('error', () => done('error ' + v.error.code + ' ' + v.error.message));
  setTimeout(() => done('stuck at ' + v.currentTime + ', ready state ' + v.readyState), 30000);
  v.src = %s;
  document.body.appendChild(v);
  v.play().catch((e) => done('play refused: ' + e));
})"""


@contextlib.asynccontextmanager
async def devtools(chromium: str, profile: Path, *flags: str) -> AsyncIterator[_DevTools]:
    """A headless Chromium (its own ``profile``, ``flags`` added) and a DevTools
    connection to its first page; the browser is killed on the way out."""
    process = await asyncio.create_subprocess_exec(
        chromium,
        *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        f"--user-data-dir={profile}",
        *flags,
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        found = None
        while found is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            assert line, "Chromium ended without opening its DevTools port"
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{found.group(1)}/json/list") as answer:
                pages = [t for t in await answer.json() if t["type"] == "page"]
            async with session.ws_connect(pages[0]["webSocketDebuggerUrl"]) as socket:
                yield _DevTools(socket)
    finally:
        process.kill()
        await process.wait()


async def play(chromium: str, url: str, profile: Path) -> str:
    """What happened when Chromium played ``url`` (muted, as autoplay allows)."""
    async with devtools(chromium, profile, "--autoplay-policy=no-user-gesture-required") as tab:
        result = await tab.call(
            "Runtime.evaluate",
            {"expression": _PLAY % json.dumps(url), "awaitPromise": True, "returnByValue": True},
        )
        return str(result["result"].get("value"))


@dataclasses.dataclass(frozen=True)
class Rendered:
    """What a reader saw of a page: its text, a style check, and a screenshot."""

    text: str
    #: The computed value of ``probe`` (a JavaScript expression) after load.
    probe: str
    png: bytes


async def render(
    chromium: str,
    url: str,
    profile: Path,
    *,
    headers: dict[str, str] | None = None,
    probe: str = "''",
    width: int = 1100,
    height: int = 1500,
) -> Rendered:
    """Open ``url`` (with ``headers`` on every request, e.g. a bearer token),
    wait for its load, and return its text, ``probe``'s value and a PNG."""
    async with devtools(chromium, profile, f"--window-size={width},{height}") as tab:
        await tab.call("Page.enable")
        await tab.call("Network.enable")
        if headers:
            await tab.call("Network.setExtraHTTPHeaders", {"headers": headers})
        await tab.call("Page.navigate", {"url": url})
        await asyncio.wait_for(tab.event("Page.loadEventFired"), 60)
        text = await tab.evaluate("document.body.innerText")
        probed = await tab.evaluate(probe)
        shot = await tab.call("Page.captureScreenshot", {"format": "png"})
        return Rendered(text, probed, base64.b64decode(shot["data"]))


class _DevTools:
    """One DevTools connection: numbered calls, and events waited for by name."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._next = 0
        self._events: list[str] = []

    async def _receive(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self._socket.receive(), 60)
        assert message.type == aiohttp.WSMsgType.TEXT, "Chromium closed the DevTools connection"
        data: dict[str, Any] = json.loads(message.data)
        return data

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next += 1
        await self._socket.send_json({"id": self._next, "method": method, "params": params or {}})
        while True:
            data = await self._receive()
            if data.get("id") == self._next:
                assert "error" not in data, data["error"]
                result: dict[str, Any] = data["result"]
                return result
            if "method" in data:
                self._events.append(data["method"])

    async def event(self, name: str) -> None:
        while name not in self._events:
            data = await self._receive()
            if "method" in data:
                self._events.append(data["method"])

    async def evaluate(self, expression: str) -> str:
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        return str(result["result"].get("value"))
