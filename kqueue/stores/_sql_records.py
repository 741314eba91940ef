"""A SQL store's record operations: put (unique or not), read, delete, swap references,
record attempts and failures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from kqueue.errors import StoreError
from kqueue.stores._common import one_new_server
from kqueue.stores._sql_core import SQLStoreCore
from kqueue.stores.base import (
    AttemptFailure,
    BrokerRef,
    JobRecord,
    RecordState,
    RecordStatus,
    RefSwap,
    UniqueClaim,
    check_claims,
)

try:  # optional extra: SQLStore() names it when missing; importing this module never fails
    import sqlalchemy as sa

    from kqueue.stores import _sql_bulk, _sql_history, _sql_schema, _sql_unique
except ImportError:  # pragma: no cover - exercised in a subprocess test
    pass

_CHUNK = 500  # keys per IN (...) list


class SQLRecords(SQLStoreCore):
    """The record operations of :class:`~kqueue.stores.sql.SQLStore`."""

    def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records in one transaction (executemany), all or none."""
        if not records:
            return
        self._ensure_schema()
        self._check_sizes(records)
        rows = [_sql_schema.record_row(r) for r in records]
        with self._writing_new("put", records) as conn:
            self._insert(conn, rows)

    def put_unique(
        self, records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None], *, now: float
    ) -> list[str | None]:
        """Write the records whose unique key is free, in one transaction decided by the
        unique table's primary key (see :mod:`kqueue.stores._sql_unique`)."""
        check_claims(records, claims)
        if not records:
            return []
        self._ensure_schema()
        self._check_sizes(records)
        return self._retrying(lambda: self._put_unique_once(records, claims, now))

    def _put_unique_once(
        self, records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None], now: float
    ) -> list[str | None]:
        with self._writing_new("put_unique", records) as conn:
            holders = _sql_unique.claim_keys(conn, self._tables, records, claims, now)
            rows = [
                _sql_schema.record_row(record)
                for record, holder in zip(records, holders, strict=True)
                if holder is None
            ]
            if rows:
                self._insert(conn, rows)
            return holders

    @contextlib.contextmanager
    def _writing_new(self, action: str, records: Sequence[JobRecord]) -> Iterator[sa.Connection]:
        """A transaction writing new records; a key that exists fails it as a StoreError
        that names the keys (the database's error as its cause)."""
        try:
            with self._transaction(action) as conn:
                yield conn
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise StoreError(
                    f"a record with one of the keys {[r.key for r in records][:5]!r} already "
                    "exists; nothing was written"
                ) from exc.__cause__
            raise

    def _insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """Insert record rows: PostgreSQL's in one set-based statement, others' by executemany."""
        if self.dialect == "postgresql":
            _sql_bulk.insert_rows(conn, self._tables.records, rows)
        else:
            conn.execute(sa.insert(self._tables.records), rows)

    def release_unique(self, holds: Sequence[tuple[str, str]]) -> int:
        """Release each unique key that the given record still holds (one DELETE)."""
        if not holds:
            return 0

        def release() -> int:
            with self._transaction("release_unique") as conn:
                return _sql_unique.release(conn, self._tables.unique, holds)

        return self._retrying(release)

    def prune_unique(
        self, *, now: float, after: str | None = None, limit: int = 1000
    ) -> tuple[int, str | None]:
        """Delete up to a page of claims that no longer hold their key (one transaction)."""

        def prune() -> tuple[int, str | None]:
            with self._transaction("prune_unique") as conn:
                return _sql_unique.prune(conn, self._tables, now, after, max(1, limit))

        return self._retrying(prune)

    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The records that exist among ``keys``, by key (one query per 500 keys)."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, JobRecord] = {}
        if not unique:
            return found
        table = self._tables.records
        with self._transaction("get") as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                for row in conn.execute(sa.select(table).where(table.c.key.in_(chunk))):
                    record = _sql_schema.row_record(row)
                    found[record.key] = record
        return found

    def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """The status of the records that exist among ``keys``: no payload is read."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, RecordStatus] = {}
        if not unique:
            return found
        table = self._tables.records
        columns = (
            table.c.key,
            table.c.attempts,
            table.c.state,
            table.c.ref_server,
            table.c.ref_job,
        )
        with self._transaction("get_status") as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                query = sa.select(*columns).where(table.c.key.in_(chunk))
                for key, attempts, state, ref_server, ref_job in conn.execute(query):
                    ref = None if ref_server is None else BrokerRef(ref_server, int(ref_job))
                    found[key] = RecordStatus(
                        int(attempts), "buried" if state == "buried" else "enqueued", ref
                    )
        return found

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove several records in one transaction; the number that existed."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return 0
        table = self._tables.records
        removed = 0
        with self._transaction("delete") as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                removed += conn.execute(sa.delete(table).where(table.c.key.in_(chunk))).rowcount
        return removed

    def swap_reference(
        self, key: str, expected: BrokerRef | None, new: BrokerRef | None, *, now: float
    ) -> bool:
        """Compare-and-set the reference with one conditional UPDATE (NULL-safe)."""
        table = self._tables.records
        condition = [table.c.key == key]
        if expected is None:
            condition.append(table.c.ref_server.is_(None))
        else:
            condition += [
                table.c.ref_server == expected.server_id,
                table.c.ref_job == expected.job_id,
            ]
        update = (
            sa.update(table)
            .where(*condition)
            .values(
                ref_server=None if new is None else new.server_id,
                ref_job=None if new is None else new.job_id,
                updated_at=float(now),
            )
        )
        with self._transaction("swap_reference") as conn:
            return bool(conn.execute(update).rowcount == 1)

    def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """Compare-and-set several references in one transaction; the number that succeeded.

        Swaps from no reference and swaps from a reference are two executemany UPDATEs (on
        PostgreSQL, new jobs' swaps are one set-based UPDATE).
        """
        table = self._tables.records
        server = one_new_server(swaps) if self.dialect == "postgresql" else None
        if server is not None:
            with self._transaction("swap_references") as conn:
                return _sql_bulk.set_new_references(conn, table, server, swaps, now)
        changes = {
            "ref_server": sa.bindparam("new_server"),
            "ref_job": sa.bindparam("new_job"),
            "updated_at": float(now),
        }
        from_none = sa.update(table).where(
            table.c.key == sa.bindparam("k"), table.c.ref_server.is_(None)
        )
        from_ref = sa.update(table).where(
            table.c.key == sa.bindparam("k"),
            table.c.ref_server == sa.bindparam("old_server"),
            table.c.ref_job == sa.bindparam("old_job"),
        )
        groups = _swap_rows(swaps)

        def swap() -> int:
            swapped = 0
            with self._transaction("swap_references") as conn:
                for statement, rows in ((from_none, groups[0]), (from_ref, groups[1])):
                    if rows:
                        swapped += conn.execute(statement.values(**changes), rows).rowcount
            return swapped

        # Sweepers claiming one page at once can deadlock on MariaDB's index locks: the
        # victim's transaction rolled back whole, so its compare-and-sets run again.
        return self._retrying(swap)

    def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """Store the attempt count, last error and state; False if the record is gone."""
        table = self._tables.records
        update = (
            sa.update(table)
            .where(table.c.key == key)
            .values(attempts=attempts, last_error=last_error, state=state, updated_at=float(now))
        )
        with self._transaction("record_attempt") as conn:
            return bool(conn.execute(update).rowcount == 1)

    def record_failure(
        self,
        key: str,
        failure: AttemptFailure,
        *,
        attempts: int,
        last_error: str | None,
        state: RecordState,
        now: float,
    ) -> bool:
        """Store the attempt and append ``failure`` to the history, in one transaction."""
        changes = _sql_history.changes_of(attempts, last_error, state, now)
        with self._transaction("record_failure") as conn:
            return _sql_history.record_failure(conn, self._tables.records, key, failure, changes)

    def get_failures(self, key: str) -> list[AttemptFailure]:
        """The record's failure history, oldest first."""
        with self._transaction("get_failures") as conn:
            return _sql_history.read_failures(conn, self._tables.records, key)


def _swap_rows(swaps: Sequence[RefSwap]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The bound rows of swap_references' two UPDATEs: swaps from no reference, and from one."""
    groups: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    for key, expected, new in swaps:
        row: dict[str, Any] = {
            "k": key,
            "new_server": None if new is None else new.server_id,
            "new_job": None if new is None else new.job_id,
        }
        if expected is not None:
            row.update(old_server=expected.server_id, old_job=expected.job_id)
        groups[expected is not None].append(row)
    return groups
