"""Handovers: links for a school, with their download count.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("issued_by", sa.String(32), nullable=False),
        sa.Column("recipient", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_downloads", sa.Integer(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_handovers_item_id_items"),
        sa.ForeignKeyConstraint(["issued_by"], ["people.id"], name="fk_handovers_issued_by_people"),
        sa.PrimaryKeyConstraint("id", name="pk_handovers"),
    )


def downgrade() -> None:
    op.drop_table("handovers")
