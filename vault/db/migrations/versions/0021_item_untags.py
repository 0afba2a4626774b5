"""The child keys a record was wrapped under for a child untagged from it.

Untagging a child from a group photo deleted the wrapping of the item key
under that child's key; an erasure afterwards found nothing to mark, and
tagging the child again was allowed and revived the links and exports its
family had before the erasure. ``item_untags`` keeps which child keys the
record was under, so a child whose key of that kind is destroyed since is not
tagged again (409, vault/items/rectify.py). Untags made before this migration
left no trace; they stay as they are.

Revision ID: 0021u
Revises: 0020s
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021u"
down_revision: str | None = "0020s"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_untags",
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("child_key_id", sa.String(32), sa.ForeignKey("child_keys.id"), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "child_key_id", name="pk_item_untags"),
    )


def downgrade() -> None:
    op.drop_table("item_untags")
