"""PostgreSQL's set-based batch writes for :class:`~kqueue.stores.sql.SQLStore`.

An executemany through psycopg costs tens of microseconds of Python per row; passing each
column as one array and letting PostgreSQL ``unnest`` them makes a batch one statement with a
fixed number of parameters, whatever its size. Other backends keep executemany (SQLite's is
in C already).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from kqueue.stores.base import RefSwap

_ARRAY_TYPES = {
    "key": "varchar",
    "job_type": "varchar",
    "payload": "bytea",
    "codec": "varchar",
    "priority": "bigint",
    "delay": "double precision",
    "ttr": "bigint",
    "created_at": "double precision",
    "attempts": "integer",
    "last_error": "text",
    "ref_server": "varchar",
    "ref_job": "bigint",
    "state": "varchar",
    "updated_at": "double precision",
    "unique_until_start": "varchar",
}


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT every row with one statement: one array parameter per column."""
    quote = conn.dialect.identifier_preparer
    names = list(_ARRAY_TYPES)
    columns = ", ".join(quote.quote(name) for name in names)
    arrays = ", ".join(f"CAST(:{name} AS {_ARRAY_TYPES[name]}[])" for name in names)
    statement = sa.text(
        f"INSERT INTO {quote.format_table(table)} ({columns}) SELECT * FROM unnest({arrays})"
    )
    conn.execute(statement, {name: [row[name] for row in rows] for name in names})


def set_new_references(
    conn: sa.Connection, table: sa.Table, server: str, swaps: Sequence[RefSwap], now: float
) -> int:
    """Give records without a reference their job id on ``server`` (each key once); the
    number updated. Records that are gone or already referenced are left alone."""
    quote = conn.dialect.identifier_preparer
    key, ref_server = quote.quote("key"), quote.quote("ref_server")
    statement = sa.text(
        f"UPDATE {quote.format_table(table)} AS r SET {ref_server} = :server, "
        f"{quote.quote('ref_job')} = v.job, {quote.quote('updated_at')} = :now "
        "FROM unnest(CAST(:keys AS varchar[]), CAST(:jobs AS bigint[])) AS v(k, job) "
        f"WHERE r.{key} = v.k AND r.{ref_server} IS NULL"
    )
    params = {
        "server": server,
        "now": float(now),
        "keys": [swap_key for swap_key, _, _ in swaps],
        "jobs": [new.job_id for _, _, new in swaps if new is not None],
    }
    return int(conn.execute(statement, params).rowcount)
