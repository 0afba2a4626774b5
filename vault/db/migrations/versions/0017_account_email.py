"""The sign-in address kept only as a keyed hash (issue 18 item 4's remainder).

``accounts.email`` held each account's sign-in address in clear. It becomes
``accounts.email_hash``: the same keyed hash the directory finds a person
by (``people.email_hash``, HMAC under the key provider's ``email`` MAC key,
vault/directory/sealing.py), unique, so one account per address still
holds. Existing rows take their person's hash, which is the hash of the very
address the account was given (an account's address is its person's,
copied at the invitation); no key is needed for that. An account whose
person has no address left gets none: it cannot sign in by address until
it is invited again.

SQLite copies the table (``accounts`` has no triggers and nothing refers to
it); ``kluis init`` then compacts the database so the dropped addresses
leave no bytes behind (``DROPS_CLEAR_TEXT``, vault/db/migrate.py).

Revision ID: 0017a
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017a"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: ``kluis init`` compacts the tables after this revision (vault/db/migrate.py).
DROPS_CLEAR_TEXT = True


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("email_hash", sa.LargeBinary(32), nullable=True))
    op.execute(
        "UPDATE accounts SET email_hash = "
        "(SELECT people.email_hash FROM people WHERE people.id = accounts.person_id)"
    )
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("uq_accounts_email", type_="unique")
        batch.drop_column("email")
        batch.create_unique_constraint("uq_accounts_email_hash", ["email_hash"])


def downgrade() -> None:
    # The address is not brought back in clear (it exists only sealed now):
    # after a downgrade an account signs in again once it is invited anew.
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("uq_accounts_email_hash", type_="unique")
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
        batch.create_unique_constraint("uq_accounts_email", ["email"])
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("email_hash")
