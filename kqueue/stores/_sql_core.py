"""The core of a SQL store: its engine, the schema ensured once, transactions with the
driver's errors translated, size checks and deadlock retries. The operations are in the
modules beside it (_sql_records, _sql_scans, _sql_meta), each a class over this one that
:class:`~kqueue.stores.sql.SQLStore` joins."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from kqueue.errors import ConfigurationError, RecordTooLargeError, StoreConnectionError, StoreError
from kqueue.stores.base import JobRecord, StoreBase
from kqueue.stores.url import SQL_SCHEMES, redact_url, scrub, url_scheme

try:  # optional extra: SQLStore() names it when missing; importing this module never fails
    import sqlalchemy as sa

    from kqueue.stores import _sql_schema, _sql_unique
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
_MYSQL_ESCAPED = b"\x00\n\r\\'\"\x1a"  # bytes a MySQL driver doubles when it inlines a value
_T = TypeVar("_T")
_DEADLOCK_RETRIES = 20
_BIG_BACKEND_LIMIT = 1_000_000_000  # SQLite's SQLITE_MAX_LENGTH; PostgreSQL's bytea is 1 GB


class SQLStoreCore(StoreBase):
    """What every part of :class:`~kqueue.stores.sql.SQLStore` stands on (its constructor,
    documented there)."""

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
