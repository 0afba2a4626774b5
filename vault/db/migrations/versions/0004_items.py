"""Items (records), the children they belong to, their blobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(32), nullable=True),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["uploaded_by"], ["people.id"], name="fk_items_uploaded_by_people"),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
    )
    op.create_table(
        "item_children",
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_item_children_item_id_items"),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.id"], name="fk_item_children_child_id_children"
        ),
        sa.PrimaryKeyConstraint("item_id", "child_id", name="pk_item_children"),
    )
    op.create_index("ix_item_children_child_id", "item_children", ["child_id"])
    op.create_table(
        "item_blobs",
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("blob_size", sa.BigInteger(), nullable=False),
        sa.Column("plaintext_size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_item_blobs_item_id_items"),
        sa.PrimaryKeyConstraint("item_id", "variant", name="pk_item_blobs"),
        sa.UniqueConstraint("blob_key", name="uq_item_blobs_blob_key"),
    )


def downgrade() -> None:
    op.drop_table("item_blobs")
    op.drop_index("ix_item_children_child_id", table_name="item_children")
    op.drop_table("item_children")
    op.drop_table("items")
