"""Failure histories and kept results for :class:`~kqueue.stores.sql.SQLStore`.

A record's history is the JSON text of its ``failures`` column, rewritten whole on each
failure under a row lock (``SELECT ... FOR UPDATE``; SQLite's write lock serialises by
itself). Results are rows of their own table, written by each dialect's upsert, so a job
that ran twice keeps its last outcome.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from kqueue.stores.base import (
    AttemptFailure,
    RecordState,
    StoredResult,
    append_failure,
    decode_failures,
)

__all__ = [
    "changes_of",
    "delete_expired",
    "read_failures",
    "read_result",
    "record_failure",
    "upsert_result",
]


def record_failure(
    conn: sa.Connection,
    table: sa.Table,
    key: str,
    failure: AttemptFailure,
    changes: dict[str, Any],
) -> bool:
    """Apply ``changes`` (attempts, last_error, state, updated_at) to the record and append
    ``failure`` to its history; False if the record is gone.

    The row is locked before its history is read (``SELECT ... FOR UPDATE``; on SQLite, whose
    reads take no lock, a first UPDATE takes the write lock), so two failures recorded at
    once both land.
    """
    where = table.c.key == key
    if conn.dialect.name == "sqlite":
        if conn.execute(sa.update(table).where(where).values(**changes)).rowcount != 1:
            return False
        changes = {}
    query = sa.select(table.c.key, table.c.failures).where(where).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        return False
    history = append_failure(row[1], failure)
    conn.execute(sa.update(table).where(where).values(failures=history, **changes))
    return True


def read_failures(conn: sa.Connection, table: sa.Table, key: str) -> list[AttemptFailure]:
    """The record's history, oldest first."""
    text = conn.execute(sa.select(table.c.failures).where(table.c.key == key)).scalar()
    return decode_failures(text)


def changes_of(
    attempts: int, last_error: str | None, state: RecordState, now: float
) -> dict[str, Any]:
    """The column values ``record_attempt`` sets."""
    return {
        "attempts": attempts,
        "last_error": last_error,
        "state": state,
        "updated_at": float(now),
    }


def upsert_result(conn: sa.Connection, table: sa.Table, key: str, result: StoredResult) -> None:
    """Insert or replace the outcome kept under ``key``."""
    values = {
        "key": key,
        "outcome": result.outcome,
        "payload": result.payload,
        "codec": result.codec,
        "finished_at": float(result.finished_at),
        "expires_at": float(result.expires_at),
    }
    changed = {name: value for name, value in values.items() if name != "key"}
    name = conn.dialect.name
    statement: Any
    if name == "postgresql":
        statement = postgresql.insert(table).values(values)
        statement = statement.on_conflict_do_update(index_elements=["key"], set_=changed)
    elif name == "sqlite":
        statement = sqlite.insert(table).values(values)
        statement = statement.on_conflict_do_update(index_elements=["key"], set_=changed)
    elif name in ("mysql", "mariadb"):
        statement = mysql.insert(table).values(values).on_duplicate_key_update(**changed)
    else:  # another backend: replace in the same transaction
        conn.execute(sa.delete(table).where(table.c.key == key))
        statement = sa.insert(table).values(values)
    conn.execute(statement)


def read_result(conn: sa.Connection, table: sa.Table, key: str, now: float) -> StoredResult | None:
    """The outcome kept under ``key`` unless expired by ``now``."""
    query = sa.select(
        table.c.outcome, table.c.payload, table.c.codec, table.c.finished_at, table.c.expires_at
    ).where(table.c.key == key, table.c.expires_at > float(now))
    row = conn.execute(query).first()
    if row is None:
        return None
    outcome, payload, codec, finished_at, expires_at = row
    return StoredResult(
        "failed" if outcome == "failed" else "done",
        bytes(payload),
        codec,
        float(finished_at),
        float(expires_at),
    )


def delete_expired(conn: sa.Connection, table: sa.Table, now: float) -> int:
    """Remove the outcomes expired by ``now``; how many."""
    return int(conn.execute(sa.delete(table).where(table.c.expires_at <= float(now))).rowcount)
