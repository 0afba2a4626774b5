"""The rights of the people concerned, and directory text sealed.

New: restrictions (a policy fact, watched by the facts-version triggers),
the register of requests, the privacy officer's sealed access reasons,
publication links; items get a ``version`` and ``updated_at``, their
children a ``tagged`` mark; people, locations, groups and holds get the
columns their sealed text goes in (names, e-mail addresses and their keyed
hash, block and hold reasons).

The clear columns stay until revision 0014a: sealing existing rows needs
the key provider, which a migration does not have, so ``kluis init`` seals
them between the two revisions, under its installation lock
(vault/directory/sealing.py), and 0014a refuses to drop a clear column
that still holds a value with no sealed copy.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The fact tables this revision adds (0009 watches the others).
WATCHED = ("restrictions",)
BUMP = "UPDATE facts_version SET n = n + 1 WHERE id = 1"


def _when(name: str, nullable: bool = False) -> "sa.Column[datetime]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _sealed(name: str, nullable: bool = True) -> "sa.Column[bytes]":
    return sa.Column(name, sa.LargeBinary(), nullable=nullable)


def upgrade() -> None:
    op.add_column("people", _sealed("profile"))
    op.add_column("people", sa.Column("email_hash", sa.LargeBinary(32), nullable=True))
    op.add_column("people", _sealed("sealed_block_reason"))
    op.add_column("people", _when("unlinked_at", nullable=True))
    op.add_column("people", _when("forgotten_at", nullable=True))
    op.create_index("ix_people_email_hash", "people", ["email_hash"])
    op.add_column("locations", _sealed("sealed_name"))
    op.add_column("care_groups", _sealed("sealed_name"))
    op.add_column("holds", _sealed("sealed_reason"))
    op.add_column("items", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("items", _when("updated_at", nullable=True))
    op.add_column(
        "item_children",
        sa.Column("tagged", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "restrictions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        _sealed("sealed_reason", nullable=False),
        _when("created_at"),
        sa.Column("created_by", sa.String(32), nullable=False),
        _when("lifted_at", nullable=True),
        sa.Column("lifted_by", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.id"], name="fk_restrictions_child_id_children"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["people.id"], name="fk_restrictions_created_by_people"
        ),
        sa.ForeignKeyConstraint(
            ["lifted_by"], ["people.id"], name="fk_restrictions_lifted_by_people"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_restrictions"),
    )
    op.create_index("ix_restrictions_child_id", "restrictions", ["child_id"])
    op.create_table(
        "requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=True),
        sa.Column("filed_by", sa.String(32), nullable=False),
        _when("received_at"),
        _when("due_at"),
        _sealed("sealed_note"),
        _when("answered_at", nullable=True),
        sa.Column("answered_by", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        _sealed("sealed_answer"),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.id"], name="fk_requests_child_id_children"
        ),
        sa.ForeignKeyConstraint(["filed_by"], ["people.id"], name="fk_requests_filed_by_people"),
        sa.ForeignKeyConstraint(
            ["answered_by"], ["people.id"], name="fk_requests_answered_by_people"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
    )
    op.create_index("ix_requests_due_at", "requests", ["due_at"])
    op.create_table(
        "access_reasons",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        _sealed("sealed", nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", "child_id", name="pk_access_reasons"),
    )
    op.create_table(
        "publications",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("issued_by", sa.String(32), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_publications_item_id_items"),
        sa.ForeignKeyConstraint(
            ["issued_by"], ["people.id"], name="fk_publications_issued_by_people"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_publications"),
    )
    op.create_index("ix_publications_item_id", "publications", ["item_id"])
    _watch()


def _watch() -> None:
    """The facts-version triggers of 0009, on the fact tables added here."""
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION kluis_facts_changed()"
            )
        return
    for table in WATCHED:
        for change in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER facts_{table}_{change.lower()} AFTER {change} ON {table} "
                f"BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    op.drop_index("ix_publications_item_id", table_name="publications")
    op.drop_table("publications")
    op.drop_table("access_reasons")
    op.drop_index("ix_requests_due_at", table_name="requests")
    op.drop_table("requests")
    op.drop_index("ix_restrictions_child_id", table_name="restrictions")
    op.drop_table("restrictions")  # its triggers go with it
    # Plain DROP COLUMN (SQLite 3.35+): a table copy would drop the facts triggers.
    for table, column in (
        ("item_children", "tagged"),
        ("items", "updated_at"),
        ("items", "version"),
        ("holds", "sealed_reason"),
        ("care_groups", "sealed_name"),
        ("locations", "sealed_name"),
    ):
        op.drop_column(table, column)
    op.drop_index("ix_people_email_hash", table_name="people")
    for column in ("forgotten_at", "unlinked_at", "sealed_block_reason", "email_hash", "profile"):
        op.drop_column("people", column)
