"""A SQL store's scans and counts, as the sweeper and the CLI page through records."""

from __future__ import annotations

from kqueue.stores._sql_core import SQLStoreCore
from kqueue.stores.base import JobRecord, UnscheduledCursor

try:  # optional extra: SQLStore() names it when missing; importing this module never fails
    import sqlalchemy as sa

    from kqueue.stores import _sql_schema
except ImportError:  # pragma: no cover - exercised in a subprocess test
    pass


class SQLScans(SQLStoreCore):
    """The scans and counts of :class:`~kqueue.stores.sql.SQLStore`."""

    def scan(
        self, *, after: str | None = None, limit: int = 500, job_type: str | None = None
    ) -> list[JobRecord]:
        """Up to ``limit`` records with key > ``after`` in ascending key order."""
        if limit <= 0:
            return []
        table = self._tables.records
        query = sa.select(table).order_by(table.c.key).limit(limit)
        if job_type is not None:
            query = query.where(table.c.job_type == job_type)
        if after is not None:
            query = query.where(table.c.key > after)
        with self._transaction("scan") as conn:
            return [_sql_schema.row_record(row) for row in conn.execute(query)]

    def count(self, job_type: str | None = None) -> int:
        """How many records are stored (of one job type, or all)."""
        table = self._tables.records
        query = sa.select(sa.func.count()).select_from(table)
        if job_type is not None:
            query = query.where(table.c.job_type == job_type)
        with self._transaction("count") as conn:
            return int(conn.execute(query).scalar_one())

    def referenced_servers(self) -> set[str]:
        """Every server id a reference names: one index probe per distinct server (a loose
        index scan), however many records reference each."""
        table = self._tables.records
        column = table.c.ref_server
        found: set[str] = set()
        query = sa.select(column).where(column.is_not(None)).order_by(column).limit(1)
        with self._transaction("referenced_servers") as conn:
            server = conn.execute(query).scalar()
            while server is not None:
                found.add(server)
                server = conn.execute(query.where(column > server)).scalar()
        return found

    def scan_referencing(
        self, server_id: str | None, *, after: str | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records whose reference names ``server_id`` (None: none), in key order, read
        through the ``(ref_server, key)`` index."""
        if limit <= 0:
            return []
        table = self._tables.records
        on = table.c.ref_server
        query = sa.select(table).where(on.is_(None) if server_id is None else on == server_id)
        if after is not None:
            query = query.where(table.c.key > after)
        with self._transaction("scan_referencing") as conn:
            rows = conn.execute(query.order_by(table.c.key).limit(limit))
            return [_sql_schema.row_record(row) for row in rows]

    def scan_unscheduled(
        self, *, before: float, after: UnscheduledCursor | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records without a reference written before ``before``, in ``(updated_at, key)``
        order, read through the ``(ref_server, updated_at, key)`` index."""
        if limit <= 0:
            return []
        query = _sql_schema.unscheduled_query(self._tables.records, before, after, limit)
        with self._transaction("scan_unscheduled") as conn:
            return [_sql_schema.row_record(row) for row in conn.execute(query)]

    def count_unscheduled(self, *, since: float | None = None) -> int:
        """Records without a reference (written ``since`` or later), counted through the
        ``(ref_server, updated_at, key)`` index."""
        table = self._tables.records
        query = sa.select(sa.func.count()).select_from(table).where(table.c.ref_server.is_(None))
        if since is not None:
            query = query.where(table.c.updated_at >= since)
        with self._transaction("count_unscheduled") as conn:
            return int(conn.execute(query).scalar() or 0)
