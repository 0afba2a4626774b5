"""The demo's records: photos, the video, diary entries, documents; then the contract that ended.

Each file goes in as ``POST /v1/children/{id}/items`` puts it in: its
``meta`` read as the API reads it, the uploader and every child in it asked
of the policy (photo consent for each child shown, the group's staff only,
while the contract runs), then :func:`vault.items.ingest.ingest_file`:
sniffed, capped, stripped of its metadata, encrypted, stored, its
``item.store`` event committed with its rows, a video's posters queued.
Diary entries go through :func:`~vault.items.ingest.ingest_text`, as the
JSON form of the same call does.

They go in oldest day first, so each timeline has the newest on top, and a
day's files before the diary entries that show them. Then the contracts the
sample ended are ended as ``PUT /v1/children/{id}/placement`` ends them:
the guardians are mailed until when the records stay visible, the child's
keys move to the epochs the end date calls for.

May touch: items and their blobs, item and child keys, the job queue, the
outbox, the audit log.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from vault.api.models.directory import PlacementDates
from vault.api.models.records import DiaryEntry, UploadMeta
from vault.demo import documents, pictures, sample
from vault.demo.acting import Acting, body, taken
from vault.directory import children as kids
from vault.items.ingest import ingest_file, ingest_text, one
from vault.items.service import ItemRecord
from vault.mail import notices
from vault.policy import Action, NewItemTarget
from vault.wiring import utcnow


@dataclasses.dataclass(frozen=True)
class Media:
    """Every file the sample uploads, made before the first is."""

    photos: dict[str, bytes]
    video: bytes | None
    documents: dict[str, bytes]
    #: Why there is no video, if there is none.
    no_video: str | None = None


def draw(today: date) -> Media:
    """The sample's files (blocking: run it in a thread). No video without ffmpeg."""
    looks = {kid.key: kid.look for kid in sample.KIDS}
    names = {person.key: person.name for person in sample.PEOPLE}
    photos = {
        shot.key: pictures.photo(
            [looks[k] for k in shot.children],
            shot.scene,
            taken(today, shot.days_ago, n),
            names[shot.by],
        )
        for n, shot in enumerate(sample.PHOTOS)
    }
    papers = {doc.kind: documents.pdf(doc.heading, doc.lines) for doc in sample.DOCUMENTS}
    clip = sample.VIDEO
    try:
        film = pictures.video([looks[k] for k in clip.children], taken(today, clip.days_ago, 9))
    except pictures.NoVideo as reason:
        return Media(photos, None, papers, f"{reason}, so the sample has no video")
    return Media(photos, film, papers)


async def records(run: Acting, media: Media) -> dict[str, int]:
    """Every record of the sample, oldest day first; how many of each kind."""
    steps: list[tuple[tuple[int, int], Callable[[], Awaitable[str]]]] = []
    for n, shot in enumerate(sample.PHOTOS):
        steps.append(((-shot.days_ago, 0), functools.partial(photo, run, shot, n, media)))
    if media.video is not None:
        clip = sample.VIDEO
        steps.append(((-clip.days_ago, 0), functools.partial(video, run, clip, media.video)))
    for entry in sample.DIARIES:
        steps.append(((-entry.days_ago, 1), functools.partial(diary, run, entry)))
    for doc in sample.DOCUMENTS:
        steps.append(((-doc.days_ago, 2), functools.partial(document, run, doc, media)))
    counts = {"photo": 0, "video": 0, "diary": 0}
    for _, step in sorted(steps, key=lambda s: s[0]):
        kind = await step()
        counts[kind] = counts.get(kind, 0) + 1
    run.as_operator()
    return counts


async def upload(
    run: Acting,
    by: str,
    kind: str,
    owners: tuple[str, ...],
    data: bytes,
    file_name: str,
    title: str,
    taken_at: datetime | None,
) -> ItemRecord:
    """A file as ``POST /v1/children/{id}/items`` stores it, by the person ``by``,
    posted to ``owners[0]`` with the others tagged."""
    uploader = await run.as_person(by)
    meta = body(
        UploadMeta,
        kind=kind,
        title=title,
        taken_at=taken_at.isoformat() if taken_at else None,
        tagged_children=[run.ids[k] for k in owners[1:]],
    )
    facts = tuple([await run.child(key) for key in owners])
    run.allow(uploader, Action.CREATE_ITEM, NewItemTarget(meta.kind, facts))
    stored = await ingest_file(
        run.ctx,
        kind=meta.kind,
        owners=[child.id for child in facts],
        uploader=uploader.id,
        source=one(data),
        meta={"title": meta.title, "taken_at": meta.taken_at, "file_name": file_name},
        now=utcnow(),
    )
    await run.record(
        "items.create", children=stored.children, item=stored.id, kind=stored.kind, size=stored.size
    )
    return stored


async def photo(run: Acting, shot: sample.Photo, n: int, media: Media) -> str:
    when = taken(run.today, shot.days_ago, n)
    data = media.photos[shot.key]
    stored = await upload(
        run, shot.by, "photo", shot.children, data, f"IMG_{2041 + n}.JPG", shot.title, when
    )
    run.ids[f"photo:{shot.key}"] = stored.id
    return "photo"


async def video(run: Acting, clip: sample.Video, data: bytes) -> str:
    when = taken(run.today, clip.days_ago, 9)
    await upload(run, clip.by, "video", clip.children, data, "VID_0042.MP4", clip.title, when)
    return "video"


async def document(run: Acting, doc: sample.Document, media: Media) -> str:
    name = f"{doc.title.lower().replace(' ', '-')}.pdf"
    data = media.documents[doc.kind]
    await upload(run, doc.by, doc.kind, (doc.child,), data, name, doc.title, None)
    return doc.kind


async def diary(run: Acting, entry: sample.Diary) -> str:
    """A diary entry as the JSON form of ``POST /v1/children/{id}/items`` stores it
    (its photos are of the same child and day, as the API checks)."""
    writer = await run.as_person(entry.by)
    given = body(
        DiaryEntry,
        kind="diary",
        date=run.today - timedelta(days=entry.days_ago),
        text=entry.text,
        photo_ids=[run.ids[f"photo:{key}"] for key in entry.photos],
    )
    facts = await run.child(entry.child)
    run.allow(writer, Action.CREATE_ITEM, NewItemTarget("diary", (facts,)))
    stored = await ingest_text(
        run.ctx,
        kind="diary",
        owners=[facts.id],
        uploader=writer.id,
        meta={"date": given.date.isoformat(), "text": given.text, "photo_ids": given.photo_ids},
        now=utcnow(),
    )
    await run.record(
        "items.create", children=stored.children, item=stored.id, kind="diary", size=stored.size
    )
    return "diary"


async def end_contracts(run: Acting) -> None:
    """End the contracts the sample ended, after their records went in (new
    records are added only while a contract runs)."""
    run.as_operator()
    window = timedelta(weeks=run.vault.settings.policy.window_weeks)
    for kid in sample.KIDS:
        if kid.ended_days_ago is None:
            continue
        child_id = run.ids[kid.key]
        dates = body(
            PlacementDates,
            start_date=run.today - timedelta(days=kid.started_days_ago),
            end_date=run.today - timedelta(days=kid.ended_days_ago),
        )
        end = dates.end_date
        assert end is not None
        moment = utcnow()

        async def tell(
            conn: AsyncConnection,
            previous: date | None,
            *,
            cid: str = child_id,
            last: date = end,
            at: datetime = moment,
        ) -> None:
            # A new end date: every guardian learns until when to download.
            if last != previous:
                await notices.contract_end(
                    conn, run.sealer, cid, last, last + window, run.app_url, at
                )

        await run.record("directory.set_placement", children=[child_id], target=child_id)
        await kids.set_placement(run.engine, child_id, dates.start_date, end, then=tell)
        await run.retention.reschedule(child_id, end, moment)
