"""A set of ids as one bound parameter: ``column IN <the set>``, any size.

``column.in_(ids)`` binds every id: SQLAlchemy renders ``IN (?, ?, ...)``
afresh at each execution and processes each parameter, which for a
retention batch (10,000 items) cost a third of the run's CPU, and a list
past the database's bound-parameter limit (SQLite 32,766, PostgreSQL
32,767) fails. :func:`among` sends the set as a single parameter instead: on
PostgreSQL an array (``column = ANY(:ids)``), on SQLite a JSON array read by
``json_each`` (``column IN (SELECT value FROM json_each(:ids))``). The
statement's text is the same for every size, so it is compiled once and
cached, and the empty set matches nothing.

May touch: nothing (it builds clauses).
"""

from __future__ import annotations

import json
from collections.abc import Collection

from sqlalchemy import ColumnElement, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


def among(
    conn: AsyncConnection | Dialect, column: ColumnElement[str], ids: Collection[str]
) -> ColumnElement[bool]:
    """``column`` is one of ``ids`` (strings), as one parameter for the
    dialect of ``conn``; negate with ``~`` for "none of"."""
    dialect = conn.dialect if isinstance(conn, AsyncConnection) else conn
    values = list(ids)
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(String), unique=True))
    if dialect.name == "sqlite":
        rows = func.json_each(bindparam(None, json.dumps(values), type_=String, unique=True))
        return column.in_(select(rows.table_valued("value").c.value))
    raise NotImplementedError(f"no id sets for {dialect.name}")
