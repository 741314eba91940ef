"""A store on SQL databases through SQLAlchemy Core: SQLite, PostgreSQL, MariaDB/MySQL.

One row per record (key as primary key, payload as raw binary: BYTEA, BLOB, LONGBLOB), an index
on ``(job_type, key)`` for per-type scans and one on ``(ref_server, key)`` for recovery, a table
of suspended job types and a meta table with the schema version. _sql_schema.Tables are created
on first use. SQLite runs in WAL mode with a busy timeout, so several processes can share one
file. ``swap_reference`` is a single conditional UPDATE, so concurrent sweepers cannot both win.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from kqueue.errors import ConfigurationError, RecordTooLargeError, StoreConnectionError, StoreError
from kqueue.stores._common import one_new_server
from kqueue.stores.base import (
    SWEEPS_KEPT,
    AttemptFailure,
    BrokerRef,
    JobRecord,
    RecordState,
    RecordStatus,
    RefSwap,
    ServerSighting,
    StoreBase,
    StoredResult,
    UniqueClaim,
    UnscheduledCursor,
    check_claims,
)
from kqueue.stores.url import SQL_SCHEMES, redact_url, scrub, url_scheme

try:  # optional extra: SQLStore() names it when missing; importing this module never fails
    import sqlalchemy as sa

    from kqueue.stores import _sql_bulk, _sql_history, _sql_schema, _sql_unique
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    _MISSING_SQLALCHEMY: ImportError | None = exc
else:
    _MISSING_SQLALCHEMY = None

_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_EXTRA_OF_DRIVER = {
    "psycopg": "postgres",
    "psycopg2": "postgres",
    "pymysql": "mysql",
    "mysqldb": "mysql",
}
_CHUNK = 500  # keys per IN (...) list
_MYSQL_ESCAPED = b"\x00\n\r\\'\"\x1a"  # bytes a MySQL driver doubles when it inlines a value
_T = TypeVar("_T")
_DEADLOCK_RETRIES = 20
_BIG_BACKEND_LIMIT = 1_000_000_000  # SQLite's SQLITE_MAX_LENGTH; PostgreSQL's bytea is 1 GB
_EXPIRED_RESULTS_EVERY = 60.0  # seconds between two deletes of expired results, per store


class SQLStore(StoreBase):
    """Job records in a SQL database named by a SQLAlchemy URL.

    ``sqlite:///path/to/file``, ``postgresql://`` (psycopg 3 unless a driver is named),
    ``mysql://`` / ``mariadb://`` (PyMySQL unless a driver is named). Passwords in the URL never
    appear in reprs or error messages. ``table_prefix`` names the tables. ``max_record_bytes``
    caps one record (default: what the backend takes; never above ``max_allowed_packet`` on
    MySQL); larger records raise :class:`RecordTooLargeError` before anything is sent.
    """

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "kqueue_",
        max_record_bytes: int | None = None,
        connect_timeout: float = 5.0,
        busy_timeout: float = 10.0,
    ) -> None:
        if url_scheme(url) not in SQL_SCHEMES:
            raise ConfigurationError(f"not a SQL URL: {redact_url(url)!r}")
        if _MISSING_SQLALCHEMY is not None:
            raise ConfigurationError(
                "SQLStore needs SQLAlchemy: pip install kqueue[sql]"
            ) from _MISSING_SQLALCHEMY
        self._url = url
        self._where = redact_url(url)
        self._schema_lock = threading.Lock()
        # An in-memory SQLite database is one connection shared by every thread: take turns.
        self._one_connection: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        self._schema_version: int | None = None
        self._limit = max_record_bytes
        self._expired_deleted_at = 0.0
        self._tables: _sql_schema.Tables = _sql_schema.build_tables(table_prefix)
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConfigurationError(f"invalid SQL URL {self._where!r}") from exc
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS.get(parsed.drivername, parsed.drivername))
        self._engine: sa.Engine = self._create_engine(parsed, connect_timeout, busy_timeout)
        self.dialect: str = self._engine.dialect.name
        """The SQLAlchemy dialect name: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``."""

    def _create_engine(self, url: sa.URL, connect_timeout: float, busy_timeout: float) -> sa.Engine:
        backend, driver = url.get_backend_name(), url.get_driver_name()
        options: dict[str, Any] = {"hide_parameters": True}
        if backend == "sqlite":
            options["connect_args"] = {"timeout": busy_timeout}
            if url.database in (None, "", ":memory:"):
                options["poolclass"] = sa.pool.StaticPool
                self._one_connection = threading.RLock()
                options["connect_args"]["check_same_thread"] = False
        elif backend == "postgresql" and driver in ("psycopg", "psycopg2"):
            options["connect_args"] = {"connect_timeout": max(1, round(connect_timeout))}
        elif backend in ("mysql", "mariadb") and driver == "pymysql":
            options["connect_args"] = {"connect_timeout": connect_timeout}
            options["pool_recycle"] = 3600
        try:
            engine: sa.Engine = sa.create_engine(url, **options)
        except ImportError as exc:
            extra = _EXTRA_OF_DRIVER.get(driver, "sql")
            raise ConfigurationError(
                f"SQLStore cannot load the {driver} driver for {self._where!r}: "
                f"pip install kqueue[{extra}]"
            ) from exc
        except sa.exc.ArgumentError as exc:  # includes NoSuchModuleError: unknown dialect
            raise ConfigurationError(f"unsupported SQL URL {self._where!r}: {exc}") from exc
        if backend == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas(busy_timeout))
        return engine

    def __repr__(self) -> str:
        return f"SQLStore({self._where!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for operations and tests)."""
        return self._engine

    @property
    def tables(self) -> _sql_schema.Tables:
        """The SQLAlchemy tables this store uses."""
        return self._tables

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database (creating the tables if needed)."""
        self._ensure_schema()
        assert self._schema_version is not None
        return self._schema_version

    def _detail(self, exc: BaseException | None) -> str:
        """The first line of a driver message, shortened, with credentials scrubbed."""
        lines = str(exc).strip().splitlines() if exc is not None else []
        return scrub(lines[0][:300], self._url) if lines else type(exc).__name__

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn SQLAlchemy errors into the kqueue error tree, with credentials scrubbed."""
        exc_types = sa.exc
        try:
            yield
        except exc_types.DBAPIError as exc:
            detail = self._detail(exc.orig)
            if _sql_schema.too_large(exc.orig):
                raise RecordTooLargeError(
                    f"{self._where} refused {action} as too large: {detail}"
                ) from exc
            if exc.connection_invalidated or isinstance(exc, exc_types.InterfaceError):
                raise StoreConnectionError(f"lost {self._where} during {action}: {detail}") from exc
            raise StoreError(f"{self._where} failed {action}: {detail}") from exc
        except exc_types.SQLAlchemyError as exc:
            detail = self._detail(exc)
            raise StoreError(f"{self._where} failed {action}: {detail}") from exc

    def _connect(self) -> sa.Connection:
        try:
            connection: sa.Connection = self._engine.connect()
            return connection
        except sa.exc.DBAPIError as exc:
            detail = self._detail(exc.orig)
            raise StoreConnectionError(f"cannot reach {self._where}: {detail}") from exc

    def _ensure_schema(self) -> None:
        if self._schema_version is not None:
            return
        with self._schema_lock:
            if self._schema_version is not None:
                return
            self._connect().close()  # an unreachable server gets its clear error first
            with self._translate("creating tables"):
                version = _sql_schema.create_schema(self._engine, self._tables)
                if self.dialect in ("mysql", "mariadb"):
                    # Over max_allowed_packet the server may just drop the connection, which
                    # would look like an outage: never send such a statement.
                    with self._engine.connect() as conn:
                        packet = conn.execute(sa.text("SELECT @@max_allowed_packet"))
                        packet_limit = int(packet.scalar_one()) - 64 * 1024
                    self._limit = min(self._limit or packet_limit, packet_limit)
            if version > _sql_schema.SCHEMA_VERSION:
                raise StoreError(
                    f"{self._where} has kqueue schema version {version}; this kqueue knows only "
                    f"up to {_sql_schema.SCHEMA_VERSION}: upgrade kqueue"
                )
            self._schema_version = version

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[sa.Connection]:
        """A connection in one transaction, schema ensured, errors translated."""
        self._ensure_schema()
        with self._one_connection, self._connect() as conn, self._translate(action), conn.begin():
            yield conn

    def _wire_size(self, record: JobRecord) -> int:
        """Bytes one record takes in the statement the driver sends (an upper estimate)."""
        size = len(record.payload) + 4 * len(record.last_error or "") + 4096
        if self._engine.dialect.driver == "pymysql":
            size += len(record.payload)  # PyMySQL inlines bytes as hex: twice their length
        elif self.dialect in ("mysql", "mariadb"):
            size += sum(record.payload.count(byte) for byte in _MYSQL_ESCAPED)
        return size

    @property
    def max_record_bytes(self) -> int:
        """The largest statement size one record may take (``max_allowed_packet`` on MySQL).

        A PyMySQL connection sends payloads hex-encoded, so payloads up to about half of this.
        """
        self._ensure_schema()
        return _BIG_BACKEND_LIMIT if self._limit is None else self._limit

    def _check_sizes(self, records: Sequence[JobRecord]) -> None:
        limit = self.max_record_bytes
        for record in records:
            size = self._wire_size(record)
            if size > limit:
                raise RecordTooLargeError(
                    f"record {record.key!r} needs about {size} bytes, over the limit of {limit} "
                    f"of {self._where}; nothing was written"
                )

    def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records in one transaction (executemany), all or none."""
        if not records:
            return
        self._ensure_schema()
        self._check_sizes(records)
        try:
            rows = [_sql_schema.record_row(r) for r in records]
            with self._transaction("put") as conn:
                if self.dialect == "postgresql":
                    _sql_bulk.insert_rows(conn, self._tables.records, rows)
                else:
                    conn.execute(sa.insert(self._tables.records), rows)
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise StoreError(
                    f"a record with one of the keys {[r.key for r in records][:5]!r} already "
                    "exists; nothing was written"
                ) from exc.__cause__
            raise

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

    @staticmethod
    def _retrying(action: Callable[[], _T]) -> _T:
        """Run a transaction again when the database chose it as a deadlock victim
        (MySQL/MariaDB's gap and shared locks, PostgreSQL's lock order)."""
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return action()
            except StoreError as exc:
                orig = getattr(exc.__cause__, "orig", None)
                if attempt == _DEADLOCK_RETRIES - 1 or not _sql_unique.is_deadlock(orig):
                    raise
                time.sleep(random.uniform(0.001, 0.01 * (attempt + 1)))
        raise AssertionError("unreachable")

    def _put_unique_once(
        self, records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None], now: float
    ) -> list[str | None]:
        try:
            with self._transaction("put_unique") as conn:
                holders = _sql_unique.claim_keys(conn, self._tables, records, claims, now)
                rows = [
                    _sql_schema.record_row(record)
                    for record, holder in zip(records, holders, strict=True)
                    if holder is None
                ]
                if rows and self.dialect == "postgresql":
                    _sql_bulk.insert_rows(conn, self._tables.records, rows)
                elif rows:
                    conn.execute(sa.insert(self._tables.records), rows)
                return holders
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise StoreError(
                    f"a record with one of the keys {[r.key for r in records][:5]!r} already "
                    "exists; nothing was written"
                ) from exc.__cause__
            raise

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

    def close(self) -> None:
        """Close every pooled connection; the store may not be used afterwards."""
        self._engine.dispose()


def _sqlite_pragmas(busy_timeout: float) -> Any:
    """The connect hook of a SQLite engine: a busy timeout, then WAL mode."""
    millis = int(busy_timeout * 1000)

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {millis}")
        # Switching to WAL takes an exclusive lock and does not wait on the busy handler:
        # connections opening a new file at once retry for the busy timeout.
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        cursor.close()

    return pragmas


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
