"""Directory text in clear dropped, once it is sealed.

People's names and e-mail addresses, location and group names, hold and
block reasons were stored in clear. Revision 0014 added the columns their
sealed copies go in; ``kluis init`` seals every row between 0014 and this
revision (:func:`vault.directory.sealing.seal_existing`, under the
installation lock, with the key provider a migration does not have). This
revision then drops the clear columns, and refuses to when a row still holds
clear text with no sealed copy (someone ran the migrations without
``kluis init``): nothing is lost.

SQLite drops a column in place (3.35 and later): a copy of the table, as
Alembic's batch mode makes, would lose the facts-version triggers and trip
over the foreign keys that name ``people``.

Revision ID: 0014a
Revises: 0014
Create Date: 2026-12-08
"""

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014a"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: ``kluis init`` stops before the revision that says this and seals first
#: (vault/db/migrate.py, ``upgrade_sealing``).
SEALS_FIRST = True

#: Rows whose clear text has no sealed copy yet (a hold's reason of a child
#: whose records are all destroyed is not kept: there is no key left for it).
UNSEALED = {
    "people": "SELECT count(*) FROM people WHERE profile IS NULL",
    "blocks": (
        "SELECT count(*) FROM people WHERE block_reason IS NOT NULL "
        "AND sealed_block_reason IS NULL AND forgotten_at IS NULL"
    ),
    "locations": "SELECT count(*) FROM locations WHERE sealed_name IS NULL",
    "care_groups": "SELECT count(*) FROM care_groups WHERE sealed_name IS NULL",
    "holds": (
        "SELECT count(*) FROM holds WHERE sealed_reason IS NULL AND EXISTS ("
        "SELECT 1 FROM child_keys WHERE child_keys.child_id = holds.child_id "
        "AND child_keys.category = 'profile' AND child_keys.destroyed_at IS NULL)"
    ),
}
DROPPED = (
    ("people", "name"),
    ("people", "email"),
    ("people", "block_reason"),
    ("locations", "name"),
    ("care_groups", "name"),
    ("holds", "reason"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} cannot drop a column in place; "
            "Kluis needs SQLite 3.35 or later."
        )
    left = {name: bind.execute(sa.text(query)).scalar_one() for name, query in UNSEALED.items()}
    waiting = {name: n for name, n in left.items() if n}
    if waiting:
        raise RuntimeError(
            "Directory text is still in clear ("
            + ", ".join(f"{name}: {n}" for name, n in sorted(waiting.items()))
            + "); run 'kluis init', which seals it before this migration."
        )
    for table, column in DROPPED:
        op.drop_column(table, column)


def downgrade() -> None:
    # The clear text is not brought back: it exists only sealed now.
    for table, column in DROPPED:
        op.add_column(table, sa.Column(column, sa.Text(), nullable=True))
