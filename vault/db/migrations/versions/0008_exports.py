"""Exports: a guardian's archive, its layout frozen and sealed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["child_id"], ["children.id"], name="fk_exports_child_id_children"),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name="fk_exports_person_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
    )


def downgrade() -> None:
    op.drop_table("exports")
