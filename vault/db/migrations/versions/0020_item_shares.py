"""A child's share in a record can be destroyed while the record stays for others.

A group photo belongs to every child it shows; destroying one child's photo
key (an erasure, the end of its term) left the photo that child's record,
readable through another child's key. ``item_children.destroyed_at`` marks the
share as gone (vault/keys/service.py, ``destroy_in``). Shares already without
any wrapping of the item key under that child's keys are marked now.

Revision ID: 0020s
Revises: 0019b
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0020s"
down_revision: str | None = "0019b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not a batch: on SQLite that copies the table and drops its facts triggers.
    op.add_column(
        "item_children", sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True)
    )
    item_children = sa.table(
        "item_children",
        sa.column("item_id", sa.String),
        sa.column("child_id", sa.String),
        sa.column("destroyed_at", sa.DateTime(timezone=True)),
    )
    items = sa.table("items", sa.column("id", sa.String), sa.column("destroyed_at"))
    item_keys = sa.table("item_keys", sa.column("item_id"), sa.column("child_key_id"))
    child_keys = sa.table("child_keys", sa.column("id"), sa.column("child_id"))
    wrapped_for_child = (
        sa.select(sa.literal(1))
        .select_from(item_keys.join(child_keys, child_keys.c.id == item_keys.c.child_key_id))
        .where(
            item_keys.c.item_id == item_children.c.item_id,
            child_keys.c.child_id == item_children.c.child_id,
        )
        .exists()
    )
    live_item = (
        sa.select(sa.literal(1))
        .where(items.c.id == item_children.c.item_id, items.c.destroyed_at.is_(None))
        .exists()
    )
    bind = op.get_bind()
    unmarked = live_item & ~wrapped_for_child
    # Only when there is one to mark: an UPDATE moves the facts version
    # (migration 0009's triggers) even when it changes no row.
    if not bind.scalar(sa.select(sa.func.count()).select_from(item_children).where(unmarked)):
        return
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as vault.db.schema.UTCDateTime stores it
    op.execute(item_children.update().where(unmarked).values(destroyed_at=now))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (a batch would drop the triggers).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE item_children DROP COLUMN destroyed_at")
    else:
        op.drop_column("item_children", "destroyed_at")
