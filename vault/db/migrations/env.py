"""Alembic environment: migrations always run on a connection the vault hands in.

``vault.db.migrate`` opens the async engine, and runs Alembic inside
``run_sync`` with the connection in ``config.attributes["connection"]``, so the
same code migrates SQLite and PostgreSQL and never starts a second event loop.
"""

from alembic import context

from vault.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the vault runs migrations
    raise RuntimeError("Run migrations through 'kluis init' (vault.db.migrate).")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
