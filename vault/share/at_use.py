"""Every byte allowed at the moment it leaves: the facts read again, the policy asked again.

A link proves who asked and what for; what it gives is decided when it is
used. This module is where that happens, for every kind of link:

* :func:`item_facts` reads, in one batch, the person a link was issued to,
  the item, its children (placements, consents, blocks) and its key
  wrappings, as they are now (kept in the facts cache only while no fact
  changes; :mod:`vault.db.facts`);
* :func:`allow` asks the policy about them at this moment, raising the
  refusal's error;
* :func:`export_facts` and :func:`allow_export` do the same for an export:
  the guardian, the child and every record in the archive (diary entries
  included), each decided again, so a record withdrawn since stops the whole
  link; so does a record destroyed, or changed since the export was made
  (its stamp, :func:`vault.share.export.stamp`, differs), or the child's
  name on the archive's pages corrected since
  (:func:`vault.share.export.page_stamp`).

Handlers call these and nothing else to decide a link's answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Row

from vault.db.facts import FactsCache
from vault.db.reads import Reader
from vault.directory.children import child_facts_of, open_profile, sealed_profile_of
from vault.directory.people import principal_of
from vault.errors import Destroyed, NotFound
from vault.items.service import LoadedItem, read_item
from vault.keys.service import KeyService, item_key_rows
from vault.policy import Action, Child, ChildTarget, ItemTarget, Principal, Rules, decide, enforce
from vault.share.export import Plan, page_facts, page_stamp, stamp


@dataclasses.dataclass(frozen=True)
class LinkFacts:
    principal: Principal
    item: LoadedItem
    target: ItemTarget
    key_rows: Sequence[Row[Any]]


def link_facts(conn: Connection, person_id: str, item_id: str) -> LinkFacts | None:
    """Everything answering a link needs, read in one batch.

    Kept in the facts cache: every table read here must be in FACT_TABLES.
    """
    principal = principal_of(conn, person_id)
    loaded = read_item(conn, item_id)
    if principal is None or loaded is None:
        return None
    children = {}
    for child_id in loaded.record.children:
        facts = child_facts_of(conn, child_id)
        if facts is not None:
            children[child_id] = facts
    target = ItemTarget(loaded.record.policy_item(), children)
    return LinkFacts(principal, loaded, target, item_key_rows(conn, item_id))


async def item_facts(cache: FactsCache[Any, Any], person_id: str, item_id: str) -> LinkFacts:
    """The facts behind a link to ``item_id`` issued to ``person_id``; ``NotFound``
    when either is gone."""
    facts: LinkFacts | None = await cache.get(
        ("link", person_id, item_id), lambda conn: link_facts(conn, person_id, item_id)
    )
    if facts is None:
        raise NotFound()
    return facts


def allow(facts: LinkFacts, action: Action, now: datetime, rules: Rules) -> None:
    """The policy, asked again now; raises the refusal's error."""
    enforce(decide(facts.principal, action, facts.target, now, rules))


# -- exports ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportFacts:
    principal: Principal
    child: Child
    #: Each record of the archive with its key wrappings (None: the record is gone).
    records: list[tuple[str, LoadedItem | None, Sequence[Row[Any]]]]
    owners: dict[str, Child | None]
    #: What the archive's pages would show of the child now: its page stamp.
    pages: str


def records_with_keys(
    conn: Connection, ids: list[str]
) -> list[tuple[str, LoadedItem | None, Sequence[Row[Any]]]]:
    """Each record with its key wrappings, in one batch."""
    out: list[tuple[str, LoadedItem | None, Sequence[Row[Any]]]] = []
    for item_id in ids:
        loaded = read_item(conn, item_id)
        out.append((item_id, loaded, item_key_rows(conn, item_id) if loaded else ()))
    return out


_Read = tuple[
    Principal,
    Child,
    bytes,
    list[tuple[str, LoadedItem | None, Sequence[Row[Any]]]],
    dict[str, Child | None],
]


def _export_facts(
    conn: Connection, principal_id: str, child_id: str, ids: list[str]
) -> _Read | None:
    principal = principal_of(conn, principal_id)
    child = child_facts_of(conn, child_id)
    profile = sealed_profile_of(conn, child_id)
    if principal is None or child is None or profile is None:
        return None
    records = records_with_keys(conn, ids)
    owners: dict[str, Child | None] = {}
    for _, loaded, _ in records:
        for owner in loaded.record.children if loaded else ():
            if owner not in owners:
                owners[owner] = child_facts_of(conn, owner)
    return principal, child, profile, records, owners


async def export_facts(
    reader: Reader, keys: KeyService, principal_id: str, child_id: str, ids: list[str]
) -> ExportFacts:
    """The guardian, the child (and its name) and every record of an export
    as they are now."""
    read = await reader(lambda conn: _export_facts(conn, principal_id, child_id, ids))
    if read is None:
        raise NotFound()
    principal, child, sealed, records, owners = read
    profile = await open_profile(keys, child_id, sealed)
    pages = page_stamp(page_facts(child_id, profile.first_name))
    return ExportFacts(principal, child, records, owners, pages)


_CHANGED = "A record in this export was changed since it was made; ask for a new export."


def allow_export(
    facts: ExportFacts, now: datetime, rules: Rules, plan: Plan
) -> list[tuple[str, LoadedItem, Sequence[Row[Any]]]]:
    """The export asked again now, and every record in it; the records to send.
    ``plan`` keeps each record's stamp, and its pages', from when it was made."""
    # (An export exists only if its making passed, with the privacy officer's reason.)
    child = ChildTarget(facts.child)
    enforce(decide(facts.principal, Action.EXPORT, child, now, rules, reason=True))
    allowed = []
    for item_id, loaded, key_rows in facts.records:
        if loaded is None:
            raise Destroyed("A record in this export is gone; ask for a new export.")
        if facts.child.id in loaded.record.gone:
            raise Destroyed(
                "A record in this export was destroyed for this child since it was made "
                "(it stays only for the other children it shows); ask for a new export."
            )
        children = {c: f for c in loaded.record.children if (f := facts.owners.get(c)) is not None}
        decision = decide(
            facts.principal,
            Action.READ_ITEM,
            ItemTarget(loaded.record.policy_item(), children),
            now,
            rules,
        )
        if not decision.allowed:
            enforce(
                dataclasses.replace(
                    decision,
                    reason=f"{decision.reason} This export holds it; ask for a new export.",
                )
            )
        allowed.append((item_id, loaded, key_rows))
    # Only once each record is still the caller's to see (a hidden one keeps the policy's refusal).
    for item_id, loaded, _ in allowed:
        if stamp(loaded) != plan.stamps.get(item_id):
            raise Destroyed(_CHANGED)
    # The child's name on index.html and in diary.json: corrected, it is as a changed record.
    if facts.pages != plan.pages:
        raise Destroyed(_CHANGED)
    return allowed
