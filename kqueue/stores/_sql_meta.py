"""A SQL store's data beside the records: kept results, suspended job types, server
sightings and recovery pass reports.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping

from kqueue.errors import StoreError
from kqueue.stores._sql_core import SQLStoreCore
from kqueue.stores.base import SWEEPS_KEPT, ServerSighting, StoredResult

try:  # optional extra: SQLStore() names it when missing; importing this module never fails
    import sqlalchemy as sa

    from kqueue.stores import _sql_history, _sql_schema
except ImportError:  # pragma: no cover - exercised in a subprocess test
    pass

_EXPIRED_RESULTS_EVERY = 60.0  # seconds between two deletes of expired results, per store


class SQLMeta(SQLStoreCore):
    """Results, suspension, sightings and sweeps of :class:`~kqueue.stores.sql.SQLStore`."""

    def put_result(self, key: str, result: StoredResult) -> None:
        """Keep an outcome (an upsert); now and then, expired outcomes are deleted first."""
        table = self._tables.results
        if time.monotonic() - self._expired_deleted_at > _EXPIRED_RESULTS_EVERY:
            self._expired_deleted_at = time.monotonic()
            with self._transaction("delete expired results") as conn:
                _sql_history.delete_expired(conn, table, result.finished_at)
        with self._transaction("put_result") as conn:
            _sql_history.upsert_result(conn, table, key, result)

    def get_result(self, key: str, *, now: float) -> StoredResult | None:
        """The outcome kept under ``key`` unless expired by ``now``."""
        with self._transaction("get_result") as conn:
            return _sql_history.read_result(conn, self._tables.results, key, now)

    def set_suspended(self, job_type: str, suspended: bool) -> None:
        """Mark a job type suspended (or no longer)."""
        table = self._tables.suspended
        if not suspended:
            with self._transaction("set_suspended") as conn:
                conn.execute(sa.delete(table).where(table.c.job_type == job_type))
            return
        if job_type in self.suspended():
            return
        # a concurrent insert of the same row fails; the check below tells
        with contextlib.suppress(StoreError), self._transaction("set_suspended") as conn:
            conn.execute(sa.insert(table).values(job_type=job_type))
        if job_type not in self.suspended():
            raise StoreError(f"{self._where} failed set_suspended for {job_type!r}")

    def suspended(self) -> set[str]:
        """The job types currently marked suspended."""
        table = self._tables.suspended
        with self._transaction("suspended") as conn:
            return set(conn.execute(sa.select(table.c.job_type)).scalars())

    def note_servers(self, sightings: Mapping[str, ServerSighting]) -> None:
        """Remember each server id's address and when it was seen: one row of the meta table
        per server id (``server:<id>`` -> JSON ``[address, seen_at]``; no new table, so no
        schema version change). Ids or addresses too long for the table are not kept."""
        rows = _sql_schema.sighting_rows(sightings)
        if not rows:
            return
        with self._transaction("note_servers") as conn:
            _sql_schema.upsert_meta(conn, self._tables.meta, rows)

    def servers_seen(self) -> dict[str, ServerSighting]:
        """Every remembered server id with its sighting."""
        table = self._tables.meta
        query = sa.select(table.c.name, table.c.value).where(
            table.c.name.startswith(_sql_schema.SIGHTING_PREFIX, autoescape=True)
        )
        with self._transaction("servers_seen") as conn:
            return _sql_schema.sightings_of(conn.execute(query).all())

    def forget_servers(self, server_ids: Iterable[str]) -> int:
        """Drop the sightings of these server ids; how many there were."""
        names = sorted({_sql_schema.SIGHTING_PREFIX + sid for sid in server_ids})
        if not names:
            return 0
        table = self._tables.meta
        with self._transaction("forget_servers") as conn:
            return int(conn.execute(sa.delete(table).where(table.c.name.in_(names))).rowcount)

    def record_sweep(self, report: str, *, at: float) -> None:
        """Keep a recovery pass's report; reports past the newest SWEEPS_KEPT go."""
        table = self._tables.sweeps
        with self._transaction("record_sweep") as conn:
            conn.execute(sa.insert(table).values(at=at, report=report))
            oldest_kept = conn.execute(
                sa.select(table.c.id).order_by(table.c.id.desc()).offset(SWEEPS_KEPT - 1).limit(1)
            ).scalar()
            if oldest_kept is not None:
                conn.execute(sa.delete(table).where(table.c.id < oldest_kept))

    def recent_sweeps(self, limit: int = SWEEPS_KEPT) -> list[tuple[float, str]]:
        """The newest kept sweep reports, newest first."""
        table = self._tables.sweeps
        query = sa.select(table.c.at, table.c.report).order_by(table.c.id.desc())
        with self._transaction("recent_sweeps") as conn:
            return [(float(at), report) for at, report in conn.execute(query.limit(max(0, limit)))]
