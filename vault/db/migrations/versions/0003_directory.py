"""Directory (locations, groups, children, guardians), consents, failed logins.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> "sa.Column[str]":
    return sa.Column("id", sa.String(32), nullable=False)


def _when(name: str, nullable: bool = False) -> "sa.Column[datetime]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("people") as people:
        people.add_column(_when("blocked_at", nullable=True))
        people.add_column(sa.Column("block_reason", sa.Text(), nullable=True))
    op.create_table(
        "locations",
        _id(),
        sa.Column("name", sa.Text(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_locations"),
    )
    op.create_table(
        "location_managers",
        sa.Column("location_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name="fk_location_managers_location_id_locations"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_location_managers_person_id_people"
        ),
        sa.PrimaryKeyConstraint("location_id", "person_id", name="pk_location_managers"),
    )
    op.create_table(
        "care_groups",
        _id(),
        sa.Column("location_id", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name="fk_care_groups_location_id_locations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_care_groups"),
    )
    op.create_table(
        "group_staff",
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["care_groups.id"], name="fk_group_staff_group_id_care_groups"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_group_staff_person_id_people"
        ),
        sa.PrimaryKeyConstraint("group_id", "person_id", name="pk_group_staff"),
    )
    op.create_table(
        "children",
        _id(),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("profile", sa.LargeBinary(), nullable=True),
        sa.Column("mentor_id", sa.String(32), nullable=True),
        sa.Column("placement_start", sa.Date(), nullable=True),
        sa.Column("placement_end", sa.Date(), nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["group_id"], ["care_groups.id"], name="fk_children_group_id_care_groups"
        ),
        sa.ForeignKeyConstraint(["mentor_id"], ["people.id"], name="fk_children_mentor_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_children"),
    )
    op.create_table(
        "guardians",
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("household", sa.String(32), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.id"], name="fk_guardians_child_id_children"
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name="fk_guardians_person_id_people"),
        sa.PrimaryKeyConstraint("child_id", "person_id", name="pk_guardians"),
    )
    op.create_index("ix_guardians_person_id", "guardians", ["person_id"])
    op.create_table(
        "consents",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("child_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        _when("changed_at"),
        sa.Column("changed_by", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"], ["children.id"], name="fk_consents_child_id_children"
        ),
        sa.ForeignKeyConstraint(
            ["changed_by"], ["people.id"], name="fk_consents_changed_by_people"
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_consents"),
    )
    op.create_index("ix_consents_child_id", "consents", ["child_id", "changed_at"])
    op.create_table(
        "auth_failures",
        _id(),
        _when("at"),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_auth_failures"),
    )
    op.create_index("ix_auth_failures_ip_at", "auth_failures", ["ip", "at"])


def downgrade() -> None:
    op.drop_index("ix_auth_failures_ip_at", table_name="auth_failures")
    op.drop_table("auth_failures")
    op.drop_index("ix_consents_child_id", table_name="consents")
    op.drop_table("consents")
    op.drop_index("ix_guardians_person_id", table_name="guardians")
    op.drop_table("guardians")
    op.drop_table("children")
    op.drop_table("group_staff")
    op.drop_table("care_groups")
    op.drop_table("location_managers")
    op.drop_table("locations")
    with op.batch_alter_table("people") as people:
        people.drop_column("block_reason")
        people.drop_column("blocked_at")
