"""A ``kluis serve`` killed with SIGKILL mid-job: its ffmpeg dies with it, and
another server takes the job up once the lease has run out and finishes it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.files import phone_video
from tests.helpers.organisation import organisation
from tests.helpers.polling import eventually
from tests.helpers.processes import Client, Server, kluis, kluis_env

pytestmark = [pytest.mark.sqlite, pytest.mark.localdisk]

#: Stands in for ffmpeg on the first server: says it started, then hangs (a long
#: transcode), then would become the real ffmpeg. One process throughout (exec),
#: as the real one is, so the parent-death signal set before it applies to it.
SLOW_FFMPEG = """#!{python}
import os, shutil, sys, time
open({started!r}, "w").write(str(os.getpid()))
time.sleep(120)
os.execv(shutil.which("ffmpeg"), ["ffmpeg", *sys.argv[1:]])
"""


def gone(pid: int) -> bool:
    """No such process any more, or only its exit status is left (a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def test_a_worker_killed_mid_job_leaves_it_to_another_that_finishes_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = kluis_env(
        KLUIS_DATA_DIR=str(data),
        KLUIS_JOBS_LEASE_SECONDS="3",
        KLUIS_JOBS_RETRY_SECONDS="1",
        KLUIS_JOBS_POLL_SECONDS="0.5",
    )
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    admin_token = out.strip().splitlines()[-1]
    started = tmp_path / "ffmpeg-started"
    wrapper = tmp_path / "slow-ffmpeg"
    wrapper.write_text(SLOW_FFMPEG.format(python=sys.executable, started=str(started)))
    wrapper.chmod(0o755)
    doomed = Server({**env, "KLUIS_VIDEO_FFMPEG": str(wrapper)}, tmp_path / "a.log", "--jobs", "1")
    await doomed.start()
    heir: Server | None = None
    clip = phone_video(tmp_path, "mp4").read_bytes()
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, doomed.base, admin_token)
            staff, guardian, children = await organisation(admin)
            status, item = await staff.upload(children[0], {"kind": "video"}, clip, "clip.mp4")
            assert status == 201, item
            assert item["processing"] == ["preview", "thumb"]

            # The job is under way: its ffmpeg runs, the queue says who has it.
            await eventually(started.exists, "the first server's job started ffmpeg", within=60)
            ffmpeg_pid = int(started.read_text())
            status, out, err = await kluis(env, "jobs", "status")
            assert status == 0, err
            assert "1 running" in out, out
            assert "video.posters" in out

            assert doomed.proc is not None
            doomed.proc.send_signal(signal.SIGKILL)
            await doomed.proc.wait()
            # Its ffmpeg goes with it (the parent-death signal), not left running for 120 s.
            await eventually(lambda: gone(ffmpeg_pid), "its ffmpeg ended", within=10)

            heir = await Server(env, tmp_path / "b.log", "--jobs", "1").start()
            guardian = guardian.on(heir)

            deadline = time.monotonic() + 90
            while True:
                meta = await guardian.ok("GET", f"/v1/items/{item['id']}")
                if meta["variants"] == ["original", "preview", "thumb"]:
                    break
                assert time.monotonic() < deadline, (meta, heir.output()[-2000:])
                await asyncio.sleep(0.2)
            assert "processing" not in meta
            link = await guardian.ok("POST", f"/v1/items/{item['id']}/links", {"variant": "thumb"})
            status, thumb = await guardian.fetch(link["url"], heir.base)
            assert status == 200
            assert thumb[:3] == b"\xff\xd8\xff"

            status, out, err = await kluis(env, "jobs", "status")
            assert status == 0, err
            assert out.startswith("jobs: 0 queued, 0 running, 1 done, 0 failed"), out
            async with session.get(f"{heir.base}/metrics") as answer:
                metrics = await answer.text()
            assert 'kluis_jobs{state="done"} 1.0' in metrics
            assert 'kluis_jobs{state="queued"} 0.0' in metrics
            assert 'kluis_job_attempts_total{kind="video.posters",outcome="done"} 1.0' in metrics
        assert heir.server_errors() == []
    finally:
        await doomed.stop()
        if heir is not None:
            await heir.stop()
        if started.exists():
            pid = int(started.read_text())
            if not gone(pid):  # only if the parent-death signal failed
                os.kill(pid, signal.SIGKILL)


async def test_a_worker_stopped_with_sigterm_gives_its_job_back_at_once(tmp_path: Path) -> None:
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"), KLUIS_JOBS_LEASE_SECONDS="600")
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    admin_token = out.strip().splitlines()[-1]
    started = tmp_path / "ffmpeg-started"
    wrapper = tmp_path / "slow-ffmpeg"
    wrapper.write_text(SLOW_FFMPEG.format(python=sys.executable, started=str(started)))
    wrapper.chmod(0o755)
    server = Server({**env, "KLUIS_VIDEO_FFMPEG": str(wrapper)}, tmp_path / "a.log", "--jobs", "1")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            staff, _, children = await organisation(Client(session, server.base, admin_token))
            clip = phone_video(tmp_path, "mp4").read_bytes()
            status, item = await staff.upload(children[0], {"kind": "video"}, clip, "clip.mp4")
            assert status == 201, item
            await eventually(started.exists, "the job started ffmpeg", within=60)
            ffmpeg_pid = int(started.read_text())
        await server.stop()  # SIGTERM
        assert server.proc is not None
        assert server.proc.returncode == 0
        assert gone(ffmpeg_pid)
        # Queued again at once, the interrupted attempt not counted: no 10-minute lease to wait.
        status, out, err = await kluis(env, "jobs", "status")
        assert status == 0, err
        assert out.startswith("jobs: 1 queued, 0 running"), out
        assert "attempt 0" in out, out
        assert server.server_errors() == []
    finally:
        await server.stop()
        if started.exists() and not gone(int(started.read_text())):
            os.kill(int(started.read_text()), signal.SIGKILL)
