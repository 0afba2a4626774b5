"""Damaged blobs on record for the operator; certificates that say when backups go dark.

``damaged_blobs`` holds the blobs that failed their integrity check while
served or verified (``kluis storage verify`` lists them). Destruction
certificates gain ``backups_dark_at`` and ``key_provider``: when copies in
backups taken before the destruction stop being readable, and on which kind
of key store that depends (vault/retention/certificates.py). Existing
certificates keep null there; the answer computes it from their epoch.

Revision ID: 0015
Revises: 0014a
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "damaged_blobs",
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("found_by", sa.String(16), nullable=False),
        sa.Column("first_found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_found_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("blob_key", name="pk_damaged_blobs"),
    )
    with op.batch_alter_table("destruction_certificates") as batch:
        batch.add_column(sa.Column("backups_dark_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("key_provider", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("destruction_certificates") as batch:
        batch.drop_column("key_provider")
        batch.drop_column("backups_dark_at")
    op.drop_table("damaged_blobs")
