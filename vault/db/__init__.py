"""The database: schema, engine and migrations (SQLite or PostgreSQL)."""

from vault.db.engine import create_engine, reachable
from vault.db.migrate import current_revision, head_revision, is_current, upgrade

__all__ = [
    "create_engine",
    "current_revision",
    "head_revision",
    "is_current",
    "reachable",
    "upgrade",
]
