"""Retention: legal holds, destruction certificates, leases.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(["child_id"], ["children.id"], name="fk_holds_child_id_children"),
        sa.ForeignKeyConstraint(["created_by"], ["people.id"], name="fk_holds_created_by_people"),
        sa.ForeignKeyConstraint(["lifted_by"], ["people.id"], name="fk_holds_lifted_by_people"),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
    )
    op.create_index("ix_holds_child_id", "holds", ["child_id"])
    op.create_table(
        "destruction_certificates",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_destruction_certificates"),
    )
    op.create_index(
        "ix_destruction_certificates_child_id", "destruction_certificates", ["child_id"]
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_destruction_certificates_child_id", table_name="destruction_certificates")
    op.drop_table("destruction_certificates")
    op.drop_index("ix_holds_child_id", table_name="holds")
    op.drop_table("holds")
