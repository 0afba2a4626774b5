"""Putting the sample organisation into an empty vault (``kluis demo``).

Every step goes in through the code the API runs for the same call, in the
same order, and nothing else writes a row:

* each request body is read by the API's own reader
  (:func:`vault.api.body.decode`: the text gate, the model, the free-text
  pass and its BSN scan), so what the API would refuse is refused here;
* the directory (:mod:`vault.directory`: people sealed, children's profiles
  under their own keys), the consent ledger, the retention schedule and the
  contract-end mail to the guardians, as the directory and consent calls do;
* uploads and diary entries through :mod:`vault.items.ingest`: sniffed,
  size-capped, stripped of metadata, encrypted, stored, their ``item.store``
  event committed with their rows, a video's posters queued as jobs;
* what a person does (a parent's consent, a staff member's upload) is first
  asked of :func:`vault.policy.decide` for that person, and each step is put
  on the audit record under the API's action name, attributed to that
  person with the agent ``kluis demo`` (the directory's steps to the
  operator, as every command's);
* passwords are checked by the sign-in rules
  (:func:`~vault.accounts.passwords.check_new_password`), hashed with
  Argon2id and stored in the sign-in accounts (:mod:`vault.accounts.store`),
  as accepting an invitation does, without sending one.

Choice: in-process on :func:`vault.wiring.open_vault`, like every other
command, not through a running server's HTTP API: it needs no server and no
admin token (``kluis init`` prints that once, for the operator), and it can
hold the installation lock, so that the check "this vault holds nothing
yet" and the filling are one step that no other ``kluis demo`` or
``kluis init`` interleaves with.

May touch: the directory, consents, items and their blobs, the sign-in
accounts, the outbox (the contract-end mail), the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.accounts import store
from vault.accounts.passwords import Passwords, check_new_password
from vault.api.body import decode
from vault.api.models.consents import ConsentChange
from vault.api.models.directory import (
    NewChild,
    NewGroup,
    NewGuardian,
    NewLocation,
    NewPerson,
    PlacementDates,
)
from vault.api.models.records import DiaryEntry, UploadMeta
from vault.audit import CURRENT, Actor, event
from vault.db import locks
from vault.db.reads import Reader
from vault.db.schema import care_groups, children, installation, items, locations, people
from vault.demo import documents, pictures, sample
from vault.directory import children as kids
from vault.directory import consent, places
from vault.directory import people as persons
from vault.directory.children import child_facts
from vault.directory.sealing import Sealer
from vault.errors import Conflict, InvalidInput
from vault.installation import LOCK_WAIT_SECONDS
from vault.items.ingest import Context, ingest_file, ingest_text, one
from vault.items.service import ItemRecord
from vault.mail import notices
from vault.media.images import configure_vips
from vault.policy import (
    Action,
    Child,
    ChildTarget,
    NewItemTarget,
    Principal,
    Rules,
    Target,
    decide,
    enforce,
)
from vault.retention.job import Retention
from vault.wiring import Vault, utcnow

AGENT = "kluis demo"
OPERATOR = Actor(role="operator", agent=AGENT)
#: Letters and digits no one misreads (no 0/O, 1/l/I), in groups of four.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
M = TypeVar("M", bound=msgspec.Struct)


class NotEmpty(Conflict):
    default_message = (
        "This vault already holds records; 'kluis demo' fills only an empty vault, right "
        "after 'kluis init' (use a new data directory). Nothing was written."
    )


@dataclasses.dataclass(frozen=True)
class Account:
    role: str
    name: str
    email: str
    password: str = dataclasses.field(repr=False)
    shows: str


@dataclasses.dataclass
class Filled:
    accounts: list[Account]
    app_url: str
    photos: int = 0
    videos: int = 0
    diaries: int = 0
    documents: int = 0
    #: Why there is no video (no ffmpeg on the PATH), if there is none.
    no_video: str | None = None


def app_url(vault: Vault) -> str:
    """Where people sign in: ``links.public_url``, else where ``kluis serve`` listens."""
    settings = vault.settings
    base = settings.links.public_url.rstrip("/")
    if not base:
        host = settings.server.host
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).is_unspecified:  # listening everywhere
                host = "127.0.0.1"
        base = f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"
    return f"{base}/app/"


async def holdings(conn: AsyncConnection) -> dict[str, int]:
    """What the vault holds beyond what ``kluis init`` made (its admin)."""
    admin = await conn.scalar(
        select(installation.c.value).where(installation.c.key == "admin_person_id")
    )
    counts = {
        "people besides the admin": await conn.scalar(
            select(func.count()).select_from(people).where(people.c.id != (admin or ""))
        ),
        "locations": await conn.scalar(select(func.count()).select_from(locations)),
        "groups": await conn.scalar(select(func.count()).select_from(care_groups)),
        "children": await conn.scalar(select(func.count()).select_from(children)),
        "records": await conn.scalar(select(func.count()).select_from(items)),
    }
    return {what: int(n or 0) for what, n in counts.items() if n}


async def fill(vault: Vault, say: Callable[[str], None] = lambda _: None) -> Filled:
    """Fill the empty ``vault`` with the sample; :class:`NotEmpty` (nothing
    written) if it holds anything already. ``say`` hears progress."""
    async with locks.held(
        vault.engine,
        "init",
        wait=LOCK_WAIT_SECONDS,
        busy="Another 'kluis init' or 'kluis demo' has been running for minutes; check it.",
    ):
        async with vault.engine.connect() as conn:
            found = await holdings(conn)
        if found:
            held = ", ".join(f"{n} {what}" for what, n in found.items())
            raise NotEmpty(
                f"This vault already holds records ({held}); 'kluis demo' fills only an "
                "empty vault, right after 'kluis init' (in a new data directory). Nothing "
                "was written."
            )
        # Uploads are read under the same libvips lock-down as the service's.
        configure_vips()
        run = _Run(vault)
        try:
            return await run.everything(say)
        finally:
            run.close()


@dataclasses.dataclass(frozen=True)
class _Media:
    photos: dict[str, bytes]
    video: bytes | None
    documents: dict[str, bytes]


def _draw(today: date) -> _Media:
    """Every file the sample uploads (blocking: run in a thread)."""
    looks = {kid.key: kid.look for kid in sample.KIDS}
    names = {person.key: person.name for person in sample.PEOPLE}
    photos = {
        shot.key: pictures.photo(
            [looks[k] for k in shot.children],
            shot.scene,
            _taken(today, shot.days_ago, i),
            names[shot.by],
        )
        for i, shot in enumerate(sample.PHOTOS)
    }
    clip = sample.VIDEO
    video = pictures.video([looks[k] for k in clip.children], _taken(today, clip.days_ago, 9))
    papers = {doc.kind: documents.pdf(doc.heading, doc.lines) for doc in sample.DOCUMENTS}
    return _Media(photos, video, papers)


def _taken(today: date, days_ago: int, n: int) -> datetime:
    """When a photo was taken: mid-morning of its day, a few minutes apart."""
    day = today - timedelta(days=days_ago)
    return datetime.combine(day, time(9, 30), UTC) + timedelta(minutes=7 * n)


def body(model: type[M], **fields: Any) -> M:
    """``fields`` read as the API reads a request body into ``model``."""
    return decode(json.dumps(fields, default=str).encode("utf-8"), model)


def new_password(email: str) -> str:
    """A random password of 16 characters (about 79 bits) the sign-in rules accept."""
    while True:
        text = "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
        try:
            return check_new_password(text, email=email)
        except InvalidInput:  # a BSN-shaped run of digits: drawn again
            continue


class _Run:
    """One filling: the ids made so far, and acting as someone."""

    def __init__(self, vault: Vault) -> None:
        self.vault, self.engine = vault, vault.engine
        self.reader = Reader(vault.engine)
        self.sealer = Sealer(vault.engine, vault.keys, vault.provider)
        settings = vault.settings
        self.rules = Rules(
            window=timedelta(weeks=settings.policy.window_weeks),
            totp_required_roles=frozenset(settings.auth.totp_required_roles),
        )
        self.ctx = Context(vault.engine, vault.blobs, vault.keys, settings)
        self.retention = Retention(vault.engine, vault.blobs, vault.keys, vault.provider, settings)
        self.ids: dict[str, str] = {}
        self.today = utcnow().date()

    def close(self) -> None:
        self.reader.dispose()
        CURRENT.set(OPERATOR)

    # -- acting and recording ---------------------------------------------------

    async def as_person(self, key: str) -> Principal:
        principal = await persons.load_principal(self.reader, self.ids[key])
        CURRENT.set(Actor(person=principal.id, role=principal.role, agent=AGENT))
        return principal

    def allow(self, principal: Principal, action: Action, target: Target) -> None:
        enforce(decide(principal, action, target, utcnow(), self.rules))

    async def child(self, key: str) -> Child:
        facts = await child_facts(self.reader, self.ids[key])
        assert facts is not None
        return facts

    async def record(self, action: str, **detail: Any) -> None:
        await self.vault.audit.record(event(action, **detail))

    # -- the whole sample -------------------------------------------------------

    async def everything(self, say: Callable[[str], None]) -> Filled:
        drawing = asyncio.create_task(asyncio.to_thread(_draw, self.today))
        try:
            CURRENT.set(OPERATOR)
            await self.record("demo.fill")
            accounts = await self.directory()
            say("directory, passwords and consents in place; uploading")
            media = await drawing
        finally:
            if not drawing.done():
                drawing.cancel()
        filled = Filled(accounts, app_url(self.vault))
        await self.records(media, filled)
        await self.end_contracts()
        return filled

    async def directory(self) -> list[Account]:
        now = utcnow
        location = body(NewLocation, name=sample.LOCATION)
        self.ids["location"] = await places.create_location(
            self.engine, self.sealer, location.name, now()
        )
        await self.record("directory.create_location", target=self.ids["location"])
        for key, name in sample.GROUPS.items():
            group = body(NewGroup, location_id=self.ids["location"], name=name)
            self.ids[key] = await places.create_group(
                self.engine, self.sealer, group.location_id, group.name, now()
            )
            await self.record("directory.create_group", target=self.ids[key])
        passwords = Passwords()
        try:
            accounts = await asyncio.gather(
                *(self.person(person, passwords) for person in sample.PEOPLE)
            )
        finally:
            passwords.close()
        for kid in sample.KIDS:
            await self.kid(kid)
        return list(accounts)

    async def person(self, person: sample.Person, passwords: Passwords) -> Account:
        """A person, their place in the organisation, and a password to sign in with."""
        given = body(NewPerson, name=person.name, role=person.role, email=person.email)
        ttl = timedelta(days=self.vault.settings.auth.token_ttl_days)
        person_id, _ = await persons.create_person(
            self.engine, self.sealer, given.name, given.email, given.role, utcnow(), token_ttl=ttl
        )
        self.ids[person.key] = person_id
        await self.record("directory.create_person", target=person_id, role=person.role)
        # No one holds the first token (people sign in with their password): it goes.
        await self.record("directory.revoke_tokens", target=person_id)
        await persons.revoke_tokens(self.engine, person_id, utcnow())
        for group in person.groups:
            await self.record("directory.add_staff", target=self.ids[group], person=person_id)
            await places.add_staff(self.engine, self.ids[group], person_id)
        if person.role == "location_manager":
            await self.record(
                "directory.add_manager", target=self.ids["location"], person=person_id
            )
            await places.add_manager(self.engine, self.ids["location"], person_id)
        password = new_password(person.email)
        hashed = await passwords.hash(password)
        await self.record("demo.password", target=person_id)
        async with self.engine.begin() as conn:
            if await store.address_taken(conn, person.email, person_id):
                raise Conflict("Another account signs in with a demo address; nothing more added.")
            await store.set_password(conn, person_id, person.email, hashed, utcnow())
        return Account(person.role, person.name, person.email, password, person.shows)

    async def kid(self, kid: sample.Kid) -> None:
        """A child: profile, placement, guardians, mentor, then the parent's consents."""
        born = self.today - timedelta(days=kid.born_days_ago)
        new = body(
            NewChild,
            first_name=kid.first_name,
            last_name=kid.last_name,
            birth_date=born,
            group_id=self.ids[kid.group],
        )
        profile = kids.Profile(new.first_name, new.last_name, new.birth_date)
        child_id = await kids.create_child(
            self.engine, self.vault.keys, profile, new.group_id, utcnow()
        )
        self.ids[kid.key] = child_id
        await self.record("directory.create_child", children=[child_id], target=child_id)
        start = self.today - timedelta(days=kid.started_days_ago)
        dates = body(PlacementDates, start_date=start, end_date=None)
        await self.record("directory.set_placement", children=[child_id], target=child_id)
        await kids.set_placement(self.engine, child_id, dates.start_date, None)
        await self.retention.reschedule(child_id, None, utcnow())
        for guardian in kid.guardians:
            link = body(
                NewGuardian,
                person_id=self.ids[guardian.person],
                relation=guardian.relation,
                household=guardian.household,
            )
            await self.record(
                "directory.add_guardian",
                children=[child_id],
                target=child_id,
                person=link.person_id,
            )
            await kids.add_guardian(
                self.engine, child_id, link.person_id, link.relation, link.household, utcnow()
            )
        if kid.mentor is not None:
            mentor = self.ids[kid.mentor]
            await self.record(
                "directory.set_mentor", children=[child_id], target=child_id, person=mentor
            )
            await kids.set_mentor(self.engine, child_id, mentor)
        parent = await self.as_person(kid.guardians[0].person)
        for kind in kid.consents:
            change = body(ConsentChange, granted=True)
            self.allow(parent, Action.GRANT_CONSENT, ChildTarget(await self.child(kid.key)))
            await self.record(
                "consents.change", children=[child_id], consent=kind, granted=change.granted
            )
            await consent.record(self.engine, child_id, kind, change.granted, parent.id, utcnow())
        CURRENT.set(OPERATOR)

    # -- records ----------------------------------------------------------------

    async def records(self, media: _Media, filled: Filled) -> None:
        """Photos, the video, diary entries and documents, oldest day first
        (the newest ends up on top of each timeline), files before the diary
        entries of their day that show them."""
        steps: list[tuple[tuple[int, int], Callable[[], Awaitable[str]]]] = []
        for n, shot in enumerate(sample.PHOTOS):
            steps.append(((-shot.days_ago, 0), functools.partial(self.photo, shot, n, media)))
        if media.video is not None:
            clip = sample.VIDEO
            steps.append(((-clip.days_ago, 0), functools.partial(self.video, clip, media.video)))
        else:
            filled.no_video = "ffmpeg is not on the PATH, so the sample has no video"
        for entry in sample.DIARIES:
            steps.append(((-entry.days_ago, 1), functools.partial(self.diary, entry)))
        for doc in sample.DOCUMENTS:
            steps.append(((-doc.days_ago, 2), functools.partial(self.document, doc, media)))
        counts = {"photo": 0, "video": 0, "diary": 0}
        for _, step in sorted(steps, key=lambda s: s[0]):
            kind = await step()
            counts[kind] = counts.get(kind, 0) + 1
        filled.photos, filled.videos, filled.diaries = (
            counts["photo"],
            counts["video"],
            counts["diary"],
        )
        filled.documents = sum(counts.values()) - filled.photos - filled.videos - filled.diaries
        CURRENT.set(OPERATOR)

    async def upload(
        self,
        by: str,
        kind: str,
        owners: tuple[str, ...],
        data: bytes,
        file_name: str,
        title: str,
        taken_at: datetime | None,
    ) -> ItemRecord:
        """A file as ``POST /v1/children/{id}/items`` stores it, by ``by``."""
        uploader = await self.as_person(by)
        meta = body(
            UploadMeta,
            kind=kind,
            title=title,
            taken_at=taken_at.isoformat() if taken_at else None,
            tagged_children=[self.ids[k] for k in owners[1:]],
        )
        facts = tuple([await self.child(owners[0])] + [await self.child(k) for k in owners[1:]])
        self.allow(uploader, Action.CREATE_ITEM, NewItemTarget(meta.kind, facts))
        stored = await ingest_file(
            self.ctx,
            kind=meta.kind,
            owners=[child.id for child in facts],
            uploader=uploader.id,
            source=one(data),
            meta={"title": meta.title, "taken_at": meta.taken_at, "file_name": file_name},
            now=utcnow(),
        )
        await self.record(
            "items.create",
            children=stored.children,
            item=stored.id,
            kind=stored.kind,
            size=stored.size,
        )
        return stored

    async def photo(self, shot: sample.Photo, n: int, media: _Media) -> str:
        stored = await self.upload(
            shot.by,
            "photo",
            shot.children,
            media.photos[shot.key],
            f"IMG_{2041 + n}.JPG",
            shot.title,
            _taken(self.today, shot.days_ago, n),
        )
        self.ids[f"photo:{shot.key}"] = stored.id
        return "photo"

    async def video(self, clip: sample.Video, data: bytes) -> str:
        moment = _taken(self.today, clip.days_ago, 9)
        await self.upload(clip.by, "video", clip.children, data, "VID_0042.MP4", clip.title, moment)
        return "video"

    async def document(self, doc: sample.Document, media: _Media) -> str:
        name = f"{doc.title.lower().replace(' ', '-')}.pdf"
        await self.upload(
            doc.by, doc.kind, (doc.child,), media.documents[doc.kind], name, doc.title, None
        )
        return doc.kind

    async def diary(self, entry: sample.Diary) -> str:
        """A diary entry as the JSON form of ``POST /v1/children/{id}/items`` stores it."""
        writer = await self.as_person(entry.by)
        day = self.today - timedelta(days=entry.days_ago)
        given = body(
            DiaryEntry,
            kind="diary",
            date=day,
            text=entry.text,
            photo_ids=[self.ids[f"photo:{key}"] for key in entry.photos],
        )
        facts = await self.child(entry.child)
        self.allow(writer, Action.CREATE_ITEM, NewItemTarget("diary", (facts,)))
        stored = await ingest_text(
            self.ctx,
            kind="diary",
            owners=[facts.id],
            uploader=writer.id,
            meta={"date": given.date.isoformat(), "text": given.text, "photo_ids": given.photo_ids},
            now=utcnow(),
        )
        await self.record(
            "items.create",
            children=stored.children,
            item=stored.id,
            kind="diary",
            size=stored.size,
        )
        return "diary"

    # -- a contract that ended ----------------------------------------------------

    async def end_contracts(self) -> None:
        """End the contracts the sample ended (after their records went in: new
        records are added only while a contract runs), as
        ``PUT /v1/children/{id}/placement`` does: the guardians are mailed
        until when the records stay visible, the keys move to their epochs."""
        window = timedelta(weeks=self.vault.settings.policy.window_weeks)
        url = app_url(self.vault)
        for kid in sample.KIDS:
            if kid.ended_days_ago is None:
                continue
            child_id = self.ids[kid.key]
            start = self.today - timedelta(days=kid.started_days_ago)
            dates = body(
                PlacementDates,
                start_date=start,
                end_date=self.today - timedelta(days=kid.ended_days_ago),
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
                if last != previous:
                    await notices.contract_end(conn, self.sealer, cid, last, last + window, url, at)

            await self.record("directory.set_placement", children=[child_id], target=child_id)
            await kids.set_placement(self.engine, child_id, dates.start_date, end, then=tell)
            await self.retention.reschedule(child_id, end, moment)
