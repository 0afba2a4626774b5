"""Applying and checking Alembic migrations from inside the vault."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once per process: Alembic loads (compiles)
    every revision file each time it reads the directory, and ``kluis init``
    asks four times."""
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision this code's migrations know (a backup's schema must be one)."""
    return {rev.revision for rev in _scripts().walk_revisions()}


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    def run(conn: Connection) -> None:
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Back to ``revision`` (for the migrations' tests: a vault as it was then)."""

    def run(conn: Connection) -> None:
        config = _config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


#: A revision whose module sets this to True needs ``kluis init``'s sealing
#: step (vault/directory/sealing.py) to have run just before it: it drops
#: clear columns whose values need the key provider to be sealed.
SEALS_FIRST = "SEALS_FIRST"


async def stop_before_sealing(engine: AsyncEngine) -> str | None:
    """The revision to migrate to before the sealing step, or None when the
    database is past (or at) the revision that needs it.

    Found by its marker, not its id, so re-chaining the revisions keeps it.
    """
    script = _scripts()
    gates = [rev for rev in script.walk_revisions() if getattr(rev.module, SEALS_FIRST, False)]
    if not gates:
        return None
    gate = gates[0]
    current = await current_revision(engine)
    past = {rev.revision for rev in script.iterate_revisions("heads", gate.revision)}
    if current in past:
        return None
    before = gate.down_revision
    assert isinstance(before, str), "the sealing gate follows one revision"
    return before


#: A revision whose module sets this to True drops a column that held clear
#: text: ``kluis init`` compacts the database after applying it
#: (:func:`vault.directory.sealing.compact`), so no byte of it stays.
DROPS_CLEAR_TEXT = "DROPS_CLEAR_TEXT"


async def drops_clear_text(engine: AsyncEngine) -> bool:
    """Whether a revision still to apply drops clear text (its marker, or
    :data:`SEALS_FIRST`, whose revision drops the sealed columns' clear twins)."""
    script = _scripts()
    current = await current_revision(engine)
    applied = (
        set()
        if current is None
        else {rev.revision for rev in script.iterate_revisions(current, "base")}
    )
    return any(
        getattr(rev.module, DROPS_CLEAR_TEXT, False) or getattr(rev.module, SEALS_FIRST, False)
        for rev in script.walk_revisions()
        if rev.revision not in applied
    )
