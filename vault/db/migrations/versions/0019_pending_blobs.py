"""Leases on blobs being written, so the orphan sweeper leaves an upload under way alone.

An upload's blob is stored before the rows that name it are committed; a
sweep in between (``kluis storage sweep --grace-minutes 0`` beside a running
server, or an upload longer than the grace) removed it, and the record the
client was told is stored had no file. See vault/items/pending.py.

Revision ID: 0019b
Revises: 0018p
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019b"
down_revision: str | None = "0018p"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_blobs",
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("blob_key", name="pk_pending_blobs"),
    )


def downgrade() -> None:
    op.drop_table("pending_blobs")
