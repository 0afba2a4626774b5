"""Headless Chromium asked, over its DevTools protocol, whether a video plays.

``--dump-dom`` and ``--screenshot`` take their picture at the page's load,
before a video has played a frame; the DevTools protocol lets the test wait
for what a parent would see: the playing position moving past half a second.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

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


async def play(chromium: str, url: str, profile: Path) -> str:
    """What happened when Chromium played ``url`` (muted, as autoplay allows)."""
    process = await asyncio.create_subprocess_exec(
        chromium,
        *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        f"--user-data-dir={profile}",
        "--autoplay-policy=no-user-gesture-required",
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
                await socket.send_json(
                    {
                        "id": 1,
                        "method": "Runtime.evaluate",
                        "params": {
                            "expression": _PLAY % json.dumps(url),
                            "awaitPromise": True,
                            "returnByValue": True,
                        },
                    }
                )
                async for message in socket:
                    data = json.loads(message.data)
                    if data.get("id") == 1:
                        return str(data["result"]["result"].get("value"))
        raise AssertionError("Chromium closed the DevTools connection")
    finally:
        process.kill()
        await process.wait()
