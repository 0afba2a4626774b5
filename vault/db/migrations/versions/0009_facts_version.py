"""The facts version: a number every change to the policy's facts raises.

Triggers on each table in ``FACT_TABLES`` raise ``facts_version.n`` in the
same transaction as the change, whatever code (or person at a SQL prompt)
makes it, so a cached answer about who may open which record can never
outlive the facts it came from.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Frozen here (a later revision that watches more tables adds its own triggers).
TABLES = (
    "people",
    "guardians",
    "group_staff",
    "location_managers",
    "children",
    "care_groups",
    "consents",
    "items",
    "item_children",
    "item_blobs",
    "item_keys",
    "child_keys",
)
BUMP = "UPDATE facts_version SET n = n + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "facts_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_facts_version"),
    )
    op.execute("INSERT INTO facts_version (id, n) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION kluis_facts_changed() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION kluis_facts_changed()"
            )
        return
    for table in TABLES:
        for change in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER facts_{table}_{change.lower()} AFTER {change} ON {table} "
                f"BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER facts_changed ON {table}")
        op.execute("DROP FUNCTION kluis_facts_changed()")
    else:
        for table in TABLES:
            for change in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER facts_{table}_{change}")
    op.drop_table("facts_version")
