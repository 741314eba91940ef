"""Unique keys for :class:`~kqueue.stores.sql.SQLStore`: the claim table's primary key decides.

One transaction per ``put_unique``: every claim row is inserted unless its key has one already
(``ON CONFLICT DO NOTHING``, MySQL's ``INSERT IGNORE``), then the claims of those keys are read
locked (``FOR UPDATE``; SQLite holds its database write lock from the first insert), a claim
that no longer holds its key is taken over, and only the records whose claim is theirs are
inserted. A concurrent transaction inserting the same key waits on the primary key, then finds
the winner's claim. Deadlocks between such transactions (MySQL's gap and shared locks) roll
one back; the caller runs it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from kqueue.errors import StoreError
from kqueue.stores.base import JobRecord, UniqueClaim, unique_key_held

_DEADLOCKS = ("40P01", "40001")  # PostgreSQL: deadlock detected, serialization failure
_MYSQL_DEADLOCKS = (1213, 1205)  # deadlock found, lock wait timeout
_CHUNK = 500
_INSERT_ROUNDS = 5


def is_deadlock(orig: BaseException | None) -> bool:
    """Whether a DB-API error is a deadlock or serialization failure worth running again."""
    if orig is None:
        return False
    code = orig.args[0] if orig.args else None
    return (getattr(orig, "sqlstate", None) or "") in _DEADLOCKS or code in _MYSQL_DEADLOCKS


def _insert_ignoring_conflicts(conn: sa.Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return sa.insert(table).prefix_with("IGNORE")


def claim_keys(
    conn: sa.Connection,
    tables: Any,
    records: Sequence[JobRecord],
    claims: Sequence[UniqueClaim | None],
    now: float,
) -> list[str | None]:
    """Within the caller's transaction: take every free unique key for its record; the holder
    of each key that is not free (None where the record may be written)."""
    unique: sa.Table = tables.unique
    mine = {
        claim.unique_key: (record.key, claim)
        for record, claim in zip(records, claims, strict=True)
        if claim is not None
    }
    if not mine:
        return [None] * len(records)
    ordered = sorted(mine)  # one lock order for every transaction
    current = _insert_or_lock(conn, unique, ordered, mine)
    holders_alive = _existing(conn, tables.records, {key for key, _ in current.values()})
    holder_of: dict[str, str] = {}
    for unique_key in ordered:
        record_key, claim = mine[unique_key]
        holder, held = current[unique_key]
        if holder == record_key:
            continue  # inserted just now: ours
        if unique_key_held(held, record_exists=holder in holders_alive, now=now):
            holder_of[unique_key] = holder
            continue
        conn.execute(  # a stale claim (its job gone, or expired): take it over
            sa.update(unique)
            .where(unique.c.unique_key == unique_key, unique.c.record_key == holder)
            .values(**_claim_row(unique_key, record_key, claim))
        )
    return [None if claim is None else holder_of.get(claim.unique_key) for claim in claims]


def _insert_or_lock(
    conn: sa.Connection,
    unique: sa.Table,
    ordered: list[str],
    mine: dict[str, tuple[str, UniqueClaim]],
) -> dict[str, tuple[str, UniqueClaim]]:
    """Insert a claim for every free key, then lock and read the claim of every key. A claim
    deleted between the two (a prune, on PostgreSQL, where the conflicting insert takes no
    lock) is inserted again."""
    current: dict[str, tuple[str, UniqueClaim]] = {}
    missing = ordered
    for _ in range(_INSERT_ROUNDS):
        rows = [_claim_row(key, *mine[key]) for key in missing]
        conn.execute(_insert_ignoring_conflicts(conn, unique), rows)
        current.update(_current_claims(conn, unique, missing))
        missing = [key for key in ordered if key not in current]
        if not missing:
            return current
    raise StoreError(f"unique keys {missing[:3]!r} kept vanishing; nothing was written")


def _claim_row(unique_key: str, record_key: str, claim: UniqueClaim) -> dict[str, Any]:
    return {
        "unique_key": unique_key,
        "record_key": record_key,
        "held_until": claim.until,
        "expires_at": claim.expires_at,
    }


def _current_claims(
    conn: sa.Connection, unique: sa.Table, keys: list[str]
) -> dict[str, tuple[str, UniqueClaim]]:
    found: dict[str, tuple[str, UniqueClaim]] = {}
    for start in range(0, len(keys), _CHUNK):
        query = (
            sa.select(unique)
            .where(unique.c.unique_key.in_(keys[start : start + _CHUNK]))
            .order_by(unique.c.unique_key)
            .with_for_update()
        )
        for row in conn.execute(query):
            values = row._mapping
            until = values["held_until"]
            expires = values["expires_at"]
            claim = UniqueClaim(values["unique_key"], until, None if expires is None else expires)
            found[claim.unique_key] = (values["record_key"], claim)
    return found


def _existing(conn: sa.Connection, records: sa.Table, keys: set[str]) -> set[str]:
    ordered = sorted(keys)
    found: set[str] = set()
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        found.update(
            conn.execute(sa.select(records.c.key).where(records.c.key.in_(chunk))).scalars()
        )
    return found


def release(conn: sa.Connection, unique: sa.Table, holds: Sequence[tuple[str, str]]) -> int:
    """Delete each claim that still names its record; how many were."""
    statement = sa.delete(unique).where(
        unique.c.unique_key == sa.bindparam("u"), unique.c.record_key == sa.bindparam("r")
    )
    rows = [{"u": unique_key, "r": record_key} for unique_key, record_key in holds]
    return int(conn.execute(statement, rows).rowcount)


def prune(
    conn: sa.Connection, tables: Any, now: float, after: str | None, limit: int
) -> tuple[int, str | None]:
    """Delete the claims of a page that no longer hold their key (see Store.prune_unique)."""
    unique: sa.Table = tables.unique
    query = sa.select(unique).order_by(unique.c.unique_key).limit(limit)
    if after is not None:
        query = query.where(unique.c.unique_key > after)
    page = [row._mapping for row in conn.execute(query)]
    alive = _existing(conn, tables.records, {row["record_key"] for row in page})
    stale = [
        {"u": row["unique_key"], "r": row["record_key"]}
        for row in page
        if not unique_key_held(
            UniqueClaim(row["unique_key"], row["held_until"], row["expires_at"]),
            record_exists=row["record_key"] in alive,
            now=now,
        )
    ]
    # A claim taken over since the read names another record now: the DELETE leaves it.
    pruned = release(conn, unique, [(row["u"], row["r"]) for row in stale]) if stale else 0
    return pruned, (page[-1]["unique_key"] if len(page) == limit else None)
