"""Child keys (DEKs) and item keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "child_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wrapped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_child_keys"),
    )
    op.create_index(
        "uq_child_keys_live",
        "child_keys",
        ["child_id", "category"],
        unique=True,
        sqlite_where=sa.text("destroyed_at IS NULL"),
        postgresql_where=sa.text("destroyed_at IS NULL"),
    )
    op.create_index("ix_child_keys_epoch", "child_keys", ["epoch"])
    op.create_table(
        "item_keys",
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("child_key_id", sa.String(32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_key_id"], ["child_keys.id"], name="fk_item_keys_child_key_id_child_keys"
        ),
        sa.PrimaryKeyConstraint("item_id", "child_key_id", name="pk_item_keys"),
    )
    op.create_index("ix_item_keys_child_key_id", "item_keys", ["child_key_id"])


def downgrade() -> None:
    op.drop_index("ix_item_keys_child_key_id", table_name="item_keys")
    op.drop_table("item_keys")
    op.drop_index("ix_child_keys_epoch", table_name="child_keys")
    op.drop_index("uq_child_keys_live", table_name="child_keys")
    op.drop_table("child_keys")
