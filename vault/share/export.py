"""A child's records as one ZIP: planned once, produced on the fly, resumable.

:func:`plan` decides, when a guardian asks, exactly what the archive holds:
``index.html`` (an offline diary: days in order, each day's text and its
photos), ``diary.json`` (the same, machine readable: docs/export.md), and the
sanitised originals in folders by kind and date with meaningful names. It
reads each original's CRC-32 from the item's sealed metadata (computed at
upload; for older items it is computed once here, streaming), so the layout,
and with it the size, is fixed before the first byte. The plan is sealed
under the child's profile key and stored; :func:`body` then produces any byte
range of the archive from encrypted storage, decrypting only the segments
that range needs. Nothing is staged on disk or held in memory.

The plan also keeps a :func:`stamp` of every record in the archive (the
files and the diary entries that are only text in ``diary.json`` and
``index.html``), so a record changed since (a corrected title, a replaced
file, a new text) is known when the link is opened: the archive's bytes
would not be those of the record any more. What the generated pages show
of the child itself, beyond its records (:func:`page_facts`: its first
name), has its own :func:`page_stamp`, so a name corrected since is known
the same way.

Manifest layout (JSON, version 2; docs/export.md)::

    {"v": 2,
     "entries": [{"name", "size", "crc", "modified", "ref", "data"}, ...],
     "stamps": {item_id: stamp, ...},
     "pages": page_stamp}

``pages`` is absent from plans made before it was kept; theirs is the stamp
of the ``child`` their own ``diary.json`` shows. A version-1 manifest (a
bare list of entries, no stamps) is refused with :class:`OlderFormat`: it
cannot say whether its records changed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from vault.crypto.handles import ItemKey
from vault.crypto.stream import decrypt_range
from vault.items.service import ItemRecord, LoadedItem, open_meta
from vault.items.when import answered_taken_at, local_time, normal_taken_at
from vault.mail.messages import dutch_date
from vault.share.filenames import safe_file_name
from vault.share.zipstream import Entry, Part, layout, produce
from vault.storage import BlobStore

FORMAT = "kluis-export"
VERSION = 1
#: The manifest's own format (the sealed plan, not diary.json's ``VERSION``).
MANIFEST = 2
#: Domain separation of :func:`stamp` (its layout is in the docstring).
_STAMP = b"kluis-export-stamp/1"
#: Domain separation of :func:`page_stamp`.
_PAGES = b"kluis-export-pages/1"


class OlderFormat(ValueError):
    """A manifest made before stamps: whether its records changed is unknown."""


def stamp(loaded: LoadedItem) -> str:
    """What the record's part of an archive was made from, as a hex SHA-256.

    Over ``_STAMP``, then each of the item's id, its sealed metadata (the
    ``items.meta`` bytes: sealed anew, with a fresh nonce, whenever a field
    changes) and its original's blob key (new with every new content), each
    preceded by its length as 8 bytes big-endian. Nothing secret goes in: the
    inputs are stored beside each other in the database already.
    """
    original = loaded.blobs.get("original")
    digest = hashlib.sha256(_STAMP)
    for part in (
        loaded.record.id.encode(),
        bytes(loaded.sealed_meta),
        (original.blob_key if original is not None else "").encode(),
    ):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def page_facts(child_id: str, first_name: str) -> dict[str, str]:
    """What ``index.html`` and ``diary.json`` show of the child itself (its
    records have their :func:`stamp`): ``diary.json``'s ``child``."""
    return {"id": child_id, "first_name": first_name}


def page_stamp(facts: Mapping[str, Any]) -> str:
    """:func:`page_facts` as a hex SHA-256: over ``_PAGES``, then their JSON
    (keys sorted, UTF-8). A first name is easily guessed from its hash, so
    this stamp lives only in the sealed plan, beside the name itself."""
    canonical = json.dumps(dict(facts), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(_PAGES + canonical).hexdigest()


def _pages_shown(entries: Sequence[Entry]) -> str:
    """The :func:`page_stamp` of a plan made before it was kept: of the
    child its own ``diary.json`` shows."""
    for entry in entries:
        if entry.name == "diary.json" and entry.data is not None:
            return page_stamp(json.loads(entry.data)["child"])
    raise OlderFormat("an export manifest without its pages")


@dataclasses.dataclass(frozen=True)
class Source:
    """An item going into the archive: its record, blobs and opened key."""

    loaded: LoadedItem
    key: ItemKey


@dataclasses.dataclass(frozen=True)
class Plan:
    entries: list[Entry]
    parts: list[Part]
    size: int
    #: Every record in the archive, files and diary entries: its :func:`stamp` when planned.
    stamps: dict[str, str]
    #: What the generated pages show of the child: its :func:`page_stamp` when planned.
    pages: str

    @classmethod
    def of(cls, entries: list[Entry], stamps: dict[str, str], pages: str) -> Plan:
        parts, size = layout(entries)
        return cls(entries, parts, size, stamps, pages)

    def to_json(self) -> bytes:
        entries = [
            {
                "name": e.name,
                "size": e.size,
                "crc": e.crc,
                "modified": e.modified.isoformat(),
                "ref": e.ref,
                "data": base64.b64encode(e.data).decode() if e.data is not None else None,
            }
            for e in self.entries
        ]
        return json.dumps(
            {"v": MANIFEST, "entries": entries, "stamps": self.stamps, "pages": self.pages}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Plan:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("v") != MANIFEST:
            raise OlderFormat("an export manifest without stamps")
        entries = [
            Entry(
                name=e["name"],
                size=e["size"],
                crc=e["crc"],
                modified=datetime.fromisoformat(e["modified"]),
                ref=e["ref"],
                data=base64.b64decode(e["data"]) if e["data"] is not None else None,
            )
            for e in document["entries"]
        ]
        pages = document.get("pages")
        return cls.of(
            entries,
            dict(document["stamps"]),
            pages if isinstance(pages, str) else _pages_shown(entries),
        )

    @property
    def items(self) -> list[str]:
        """The records whose originals are members of the archive."""
        return [e.ref for e in self.entries if e.ref is not None]

    @property
    def records(self) -> list[str]:
        """Every record the archive was made from, diary entries included."""
        return list(self.stamps)


def _when(record: ItemRecord, meta: dict[str, Any], zone: ZoneInfo) -> tuple[datetime, date]:
    """When the file was taken (else added) on the clocks of ``zone`` (the
    camera zone), and the day it is filed under: that zone's, not UTC's."""
    taken = meta.get("taken_at")
    if isinstance(taken, str):
        try:
            if len(taken) == 10:  # a day alone: its midnight
                day = date.fromisoformat(taken)
                return datetime.combine(day, time(), zone), day
            moment = local_time(datetime.fromisoformat(normal_taken_at(taken, zone)), zone)
            return moment, moment.date()
        except ValueError:
            pass
    added = local_time(record.created_at, zone)
    return added, added.date()


def _taken_at(meta: dict[str, Any], zone: ZoneInfo) -> Any:
    """``taken_at`` as the API answers it (UTC, also for older records)."""
    taken = meta.get("taken_at")
    return answered_taken_at(taken, zone) if isinstance(taken, str) else taken


async def _crc(store: BlobStore, source: Source, meta: dict[str, Any]) -> int:
    known = meta.get("crc32")
    if isinstance(known, int):
        return known
    # An item stored before CRC-32s were kept: stream through it once.
    record, blob = source.loaded.record, source.loaded.blobs["original"]

    def read(offset: int, length: int) -> AsyncIterator[bytes]:
        return store.get(blob.blob_key, offset, length)

    value = 0
    async for chunk in decrypt_range(source.key, record.id, "original", read, blob.blob_size):
        value = zlib.crc32(chunk, value)
    return value


async def plan(
    store: BlobStore,
    sources: Sequence[Source],
    *,
    child_id: str,
    first_name: str,
    consents: dict[str, bool],
    now: datetime,
    zone: ZoneInfo,
) -> Plan:
    """The archive's plan; ``zone`` (``uploads.camera_time_zone``) decides
    a file's day folder and reads a ``taken_at`` stored without a zone."""
    files: list[tuple[Entry, dict[str, Any]]] = []
    diary: list[dict[str, Any]] = []
    taken: set[str] = set()
    stamps: dict[str, str] = {}
    for source in sorted(sources, key=lambda s: (s.loaded.record.created_at, s.loaded.record.id)):
        record = source.loaded.record
        meta = open_meta(source.key, record, source.loaded.sealed_meta)
        if record.kind == "diary":
            stamps[record.id] = stamp(source.loaded)
            diary.append(
                {
                    "id": record.id,
                    "date": meta.get("date"),
                    "text": meta.get("text", ""),
                    "photo_ids": list(meta.get("photo_ids") or []),
                    "created_at": _iso(record.created_at),
                }
            )
            continue
        blob = source.loaded.blobs.get("original")
        if blob is None:
            continue
        stamps[record.id] = stamp(source.loaded)
        when, on = _when(record, meta, zone)
        day = on.isoformat()
        fallback = f"{record.kind}-{when:%H%M%S}"
        file_name = safe_file_name(
            meta.get("title") or meta.get("file_name"), fallback, blob.content_type, "original"
        )
        stem, dot, ext = file_name.rpartition(".")
        name, n = f"{record.kind}/{day}/{file_name}", 1
        while name in taken:
            n += 1
            name = f"{record.kind}/{day}/{stem}-{n}{dot}{ext}"
        taken.add(name)
        entry = Entry(
            name=name,
            size=blob.plaintext_size,
            crc=await _crc(store, source, meta),
            modified=when,
            ref=record.id,
        )
        files.append(
            (
                entry,
                {
                    "id": record.id,
                    "kind": record.kind,
                    "file": name,
                    "title": meta.get("title"),
                    "taken_at": _taken_at(meta, zone),
                    "created_at": _iso(record.created_at),
                    "content_type": blob.content_type,
                    "size": blob.plaintext_size,
                    "day": day,
                },
            )
        )
    files.sort(key=lambda pair: pair[0].name)
    child = page_facts(child_id, first_name)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "generated_at": _iso(now),
        "child": child,
        "consents": consents,
        "entries": sorted(diary, key=lambda d: (d["date"] or "", d["created_at"])),
        "items": [{k: v for k, v in info.items() if k != "day"} for _, info in files],
    }
    diary_json = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True).encode()
    index = _index_html(document, [info for _, info in files]).encode()
    generated = [
        Entry("index.html", len(index), zlib.crc32(index), now, data=index),
        Entry("diary.json", len(diary_json), zlib.crc32(diary_json), now, data=diary_json),
    ]
    entries = generated + [entry for entry, _ in files]
    return Plan.of(entries, stamps, page_stamp(child))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.day{margin-bottom:2rem}.text{white-space:pre-wrap;line-height:1.5}
.photos{display:flex;flex-wrap:wrap;gap:.5rem}.photos img{max-width:15rem;max-height:15rem}
ul.files li{margin:.2rem 0}
"""


def _index_html(document: dict[str, Any], files: list[dict[str, Any]]) -> str:
    """The offline diary: plain HTML, relative links, no script, nothing fetched."""
    first = html.escape(document["child"]["first_name"])
    days: dict[str, dict[str, list[Any]]] = {}
    by_id = {info["id"]: info for info in files}
    for entry in document["entries"]:
        day = days.setdefault(entry["date"] or "", {"texts": [], "photos": []})
        day["texts"].append(entry["text"])
        day["photos"].extend(by_id[p] for p in entry["photo_ids"] if p in by_id)
    for info in files:
        if info["kind"] == "photo":
            day = days.setdefault(info["day"], {"texts": [], "photos": []})
            if info not in day["photos"]:
                day["photos"].append(info)
    out = [
        "<!DOCTYPE html>",
        '<html lang="nl"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src 'self' file: data:; style-src 'unsafe-inline'; media-src 'self' file:\">",
        f"<title>Dagboek van {first}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Dagboek van {first}</h1>",
        f"<p>Gemaakt op {html.escape(document['generated_at'][:10])}.</p>",
    ]
    for when in sorted(days):
        parts = days[when]
        out.append(f'<section class="day" id="d{html.escape(when)}">')
        out.append(f"<h2>{html.escape(_long_date(when))}</h2>")
        for text in parts["texts"]:
            out.append(f'<p class="text">{html.escape(text)}</p>')
        if parts["photos"]:
            out.append('<div class="photos">')
            for info in parts["photos"]:
                alt = html.escape(info["title"] or "foto")
                href = _href(info["file"])
                out.append(f'<a href="{href}"><img src="{href}" alt="{alt}"></a>')
            out.append("</div>")
        out.append("</section>")
    others = [info for info in files if info["kind"] != "photo"]
    if others:
        out.append('<h2>Overige stukken</h2><ul class="files">')
        for info in others:
            label = html.escape(info["title"] or info["file"].rsplit("/", 1)[-1])
            out.append(
                f'<li><a href="{_href(info["file"])}">{label}</a> '
                f"({html.escape(info['kind'])}, {html.escape(info['day'])})</li>"
            )
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _href(path: str) -> str:
    return quote(path, safe="/")


def _long_date(day: str) -> str:
    try:
        d = date.fromisoformat(day)
    except ValueError:
        return day or "zonder datum"
    return dutch_date(d)


def body(
    plan_: Plan, store: BlobStore, sources: dict[str, Source], start: int, end: int
) -> AsyncGenerator[bytes, None]:
    """The archive's bytes ``[start, end)``, decrypting only what they need."""

    def read(entry: Entry, offset: int, length: int) -> AsyncIterator[bytes]:
        assert entry.ref is not None
        source = sources[entry.ref]
        blob = source.loaded.blobs["original"]

        def fetch(at: int, n: int) -> AsyncIterator[bytes]:
            return store.get(blob.blob_key, at, n)

        return decrypt_range(
            source.key, entry.ref, "original", fetch, blob.blob_size, offset, offset + length
        )

    return produce(plan_.parts, start, end, read)
