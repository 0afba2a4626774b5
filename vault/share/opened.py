"""Item keys opened for a link, kept while the link lives and nothing changed.

A timeline asks for the same thumbnail link again and again, and each answer
unwrapped the child key under its master key, the item key under the child
key, and opened the item's sealed metadata for the file name. This keeps
what that gives, per link (its claims) and only while every one of these
holds, each checked at every use:

* the facts the answer was decided on are the very ones read when the key
  was opened: :class:`~vault.db.facts.FactsCache` keeps a
  :class:`~vault.share.at_use.LinkFacts` only while no fact table changed,
  in this process or any other (a destroyed child key, a deleted item key, a
  rectified item, a new owner give new facts, and the key is opened afresh
  from them, or not at all);
* the master key it was opened through still exists at this moment, as the
  key provider tells (:meth:`~vault.keys.service.KeyService.master_usable`:
  on the local keyring one ``stat`` of the file, which ``kluis retention
  run`` in another process rewrites when it destroys an epoch, before it
  marks the rows); a provider that cannot tell cheaply (PKCS#11) gets no
  entry, and every answer unwraps as before;
* the link has not expired (an entry is dropped at its first use after).

With the key go the blobs' cipher states (:class:`~vault.crypto.stream.Ciphers`:
the segment key derived once per blob, filed under its exact header).

The policy is not part of this: it is asked again at every use, before.
At most :data:`SIZE` entries, least recently used dropped first; only this
process's memory holds them (handles, never logged).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Row

from vault.crypto.handles import ItemKey
from vault.crypto.stream import Ciphers
from vault.items.service import open_meta
from vault.keys.service import KeyService
from vault.share.at_use import LinkFacts

SIZE = 1024


@dataclasses.dataclass(frozen=True)
class Opened:
    key: ItemKey
    #: The file name the item was stored with (from its sealed metadata; it
    #: may hold a child's name, so it is kept out of the repr).
    file_name: Any = dataclasses.field(repr=False)
    epoch: str = dataclasses.field(repr=False)
    rows: Sequence[Row[Any]] = dataclasses.field(repr=False)
    expires: datetime = dataclasses.field(repr=False)
    #: The blobs' cipher states under this key (the key derivation once per blob).
    ciphers: Ciphers = dataclasses.field(default_factory=Ciphers, repr=False)
    #: Answer headers by (variant, disposition): made from these same facts.
    headers: dict[tuple[str, str], dict[str, str]] = dataclasses.field(
        default_factory=dict, repr=False
    )


class OpenedKeys:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._entries: collections.OrderedDict[Hashable, Opened] = collections.OrderedDict()

    async def open(
        self, keys: KeyService, link: Hashable, facts: LinkFacts, expires: datetime, now: datetime
    ) -> Opened:
        """The item key and file name for ``link`` answered on ``facts`` at ``now``."""
        kept = self._entries.get(link)
        if kept is not None:
            if (
                kept.rows is facts.key_rows
                and now < kept.expires
                and await keys.master_usable(kept.epoch)
            ):
                self._entries.move_to_end(link)
                return kept
            self._entries.pop(link, None)
        record = facts.item.record
        key, epoch = await keys.unwrap_item_key_from(record.id, facts.key_rows)
        meta = open_meta(key, record, facts.item.sealed_meta)
        opened = Opened(key, meta.get("file_name"), epoch, facts.key_rows, expires)
        if await keys.master_usable(epoch):
            self._keep(link, opened, now)
        return opened

    def _keep(self, link: Hashable, opened: Opened, now: datetime) -> None:
        self._entries[link] = opened
        if len(self._entries) > self._size:
            for gone in [k for k, v in self._entries.items() if v.expires <= now]:
                del self._entries[gone]
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


OPENED = web.AppKey("opened_keys", OpenedKeys)
