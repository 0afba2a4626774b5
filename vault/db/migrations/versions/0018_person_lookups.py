"""Indexes for finding what a person is linked to.

Every link use and every authenticated call asks for the policy's view of a
person (``principal_of``, vault/directory/people.py): the groups they staff,
the locations they manage, the children they are guardian or mentor of. Only
the guardians had an index by person; the others were scanned in full on
each call, the children table included (10,000 rows in a large organisation).

Revision ID: 0018p
Revises: 0017a
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018p"
down_revision: str | None = "0017a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_children_mentor_id", "children", ["mentor_id"])
    op.create_index("ix_group_staff_person_id", "group_staff", ["person_id"])
    op.create_index("ix_location_managers_person_id", "location_managers", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_location_managers_person_id", "location_managers")
    op.drop_index("ix_group_staff_person_id", "group_staff")
    op.drop_index("ix_children_mentor_id", "children")
