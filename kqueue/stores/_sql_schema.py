"""Tables of :class:`~kqueue.stores.sql.SQLStore` and their idempotent creation.

Keys and job types compare byte-wise on every backend (``C`` collation on PostgreSQL,
``utf8mb4_bin`` on MySQL/MariaDB, SQLite's default), so scans come back in the same order as
Python's ``sorted()`` and ``"a"`` and ``"A"`` stay two keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from kqueue.stores.base import BrokerRef, JobRecord, ServerSighting, UnscheduledCursor

SCHEMA_VERSION = 3
"""Version of the table layout, kept in the meta table under ``schema_version``.

1: records, suspended, meta. 2: the unique and results tables, and the records'
``unique_until_start`` and ``failures`` columns (added to a version 1 table when a store opens
it). 3: the records' ``(ref_server, updated_at, key)`` index, through which recovery reads the
records never scheduled by age (added to an older table when a store opens it)."""

_OLDER_VERSIONS = ("1", "2")
"""Versions whose tables a store brings up to this one when it opens them (columns and
indexes added, see :func:`create_schema`)."""

_MYSQL = ("mysql", "mariadb")

SIGHTING_PREFIX = "server:"
"""Meta table rows named ``server:<server id>`` keep where recovery last saw that beanstalkd
server answering (JSON ``[address, seen_at]``): rows an older kqueue ignores."""


def _binary_string(length: int) -> sa.types.TypeEngine[str]:
    """A VARCHAR that sorts and compares by code point on every backend."""
    return (
        sa.String(length)
        .with_variant(sa.String(length, collation="C"), "postgresql")
        .with_variant(mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)
    )


@dataclass(frozen=True)
class Tables:
    """The tables of a store: records, suspended job types, schema metadata, unique keys, the
    kept results of finished jobs, and the newest recovery pass reports."""

    metadata: sa.MetaData
    records: sa.Table
    suspended: sa.Table
    meta: sa.Table
    unique: sa.Table
    results: sa.Table
    sweeps: sa.Table


def build_tables(prefix: str) -> Tables:
    """Describe the tables, named ``<prefix>records``, ``<prefix>suspended``, ``<prefix>meta``."""
    metadata = sa.MetaData()
    records = _records_table(prefix, metadata)
    suspended = sa.Table(
        f"{prefix}suspended",
        metadata,
        sa.Column("job_type", _binary_string(200), primary_key=True),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    meta = sa.Table(
        f"{prefix}meta",
        metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    unique = sa.Table(
        f"{prefix}unique",
        metadata,
        # The primary key is the constraint that lets one claim of a unique key exist at once.
        sa.Column("unique_key", _binary_string(255), primary_key=True),
        sa.Column("record_key", _binary_string(255), nullable=False),
        sa.Column("held_until", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.Double),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    results = _results_table(prefix, metadata)
    return Tables(
        metadata, records, suspended, meta, unique, results, _sweeps_table(prefix, metadata)
    )


def _sweeps_table(prefix: str, metadata: sa.MetaData) -> sa.Table:
    """The newest recovery pass reports (a table made when a store opens, at any version)."""
    return sa.Table(
        f"{prefix}sweeps",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def _results_table(prefix: str, metadata: sa.MetaData) -> sa.Table:
    """Finished jobs' outcomes by key, apart from the records (which go when a job ends)."""
    return sa.Table(
        f"{prefix}results",
        metadata,
        sa.Column("key", _binary_string(255), primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column(
            "payload", sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL), nullable=False
        ),
        sa.Column("codec", sa.String(64), nullable=False),
        sa.Column("finished_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Index(f"{prefix}results_expires", "expires_at"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


_FAILURES_TYPE = sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)
"""The records' ``failures`` column: the JSON of the failure history (ASCII)."""


def _records_table(prefix: str, metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        f"{prefix}records",
        metadata,
        sa.Column("key", _binary_string(255), primary_key=True),
        sa.Column("job_type", _binary_string(200), nullable=False),
        sa.Column(
            "payload", sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL), nullable=False
        ),
        sa.Column("codec", sa.String(64), nullable=False),
        sa.Column("priority", sa.BigInteger, nullable=False),
        sa.Column("delay", sa.Double, nullable=False),
        sa.Column("ttr", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL)),
        # Added after the first layout: tables made before it get it in add_new_columns().
        sa.Column("failures", _FAILURES_TYPE),
        sa.Column("ref_server", sa.String(255)),
        sa.Column("ref_job", sa.BigInteger),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("unique_until_start", _binary_string(255)),
        sa.Index(f"{prefix}records_type_key", "job_type", "key"),
        # Recovery reads the records of one server (or of none) in key order.
        sa.Index(f"{prefix}records_server_key", "ref_server", "key"),
        # Recovery reads the records without a reference by age: those past its grace only.
        sa.Index(f"{prefix}records_server_updated", "ref_server", "updated_at", "key"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def create_schema(engine: sa.Engine, tables: Tables, *, attempts: int = 20) -> int:
    """Create missing tables and the version row; return the stored schema version.

    Safe when several processes start at once: a CREATE that loses the race to another process
    fails, and the next attempt finds the table there.
    """
    for attempt in range(attempts):
        try:
            tables.metadata.create_all(engine, checkfirst=True)
            # A table made by an older kqueue lacks the newer indexes and columns: add them.
            for index in tables.records.indexes:
                index.create(engine, checkfirst=True)
            _add_missing_columns(engine, tables.records)
            break
        except sa.exc.DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.5, 0.05 * (attempt + 1)))
    meta = tables.meta
    query = sa.select(meta.c.value).where(meta.c.name == "schema_version")
    with engine.connect() as conn:
        found = conn.execute(query).scalar()
    if found is None:
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(meta).values(name="schema_version", value=str(SCHEMA_VERSION))
                )
        except sa.exc.IntegrityError:
            pass  # another process wrote it first
        with engine.connect() as conn:
            found = conn.execute(query).scalar()
    if found in _OLDER_VERSIONS:  # the newer columns and indexes were added above
        found = _record_version(engine, meta, found)
    return int(found) if found is not None else SCHEMA_VERSION


def _record_version(engine: sa.Engine, meta: sa.Table, older: str) -> str:
    """Move the recorded version from ``older`` to this kqueue's, once its tables match."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(meta)
            .where(meta.c.name == "schema_version", meta.c.value == older)
            .values(value=str(SCHEMA_VERSION))
        )
    return str(SCHEMA_VERSION)


def _add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """Add to a table made by an older kqueue the (nullable) columns it lacks."""
    present = {column["name"] for column in sa.inspect(engine).get_columns(table.name)}
    missing = [column for column in table.columns if column.name not in present]
    if not missing:
        return
    quote = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        for column in missing:
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(
                sa.text(
                    f"ALTER TABLE {quote.format_table(table)} "
                    f"ADD COLUMN {quote.quote(column.name)} {kind}"
                )
            )


def unscheduled_query(
    table: sa.Table, before: float, after: UnscheduledCursor | None, limit: int
) -> sa.Select[Any]:
    """The records without a reference written before ``before``, strictly after the cursor
    ``after``, in ``(updated_at, key)`` order (see Store.scan_unscheduled)."""
    updated, key = table.c.updated_at, table.c.key
    query = sa.select(table).where(table.c.ref_server.is_(None), updated < before)
    if after is not None:
        at, last = after
        query = query.where(sa.or_(updated > at, sa.and_(updated == at, key > last)))
    return query.order_by(updated, key).limit(limit)


def record_row(record: JobRecord) -> dict[str, Any]:
    """The column values of a record."""
    return {
        "key": record.key,
        "job_type": record.job_type,
        "payload": record.payload,
        "codec": record.codec,
        "priority": record.priority,
        "delay": float(record.delay),
        "ttr": record.ttr,
        "created_at": float(record.created_at),
        "attempts": record.attempts,
        "last_error": record.last_error,
        "ref_server": None if record.ref is None else record.ref.server_id,
        "ref_job": None if record.ref is None else record.ref.job_id,
        "state": record.state,
        "updated_at": float(record.updated_at),
        "unique_until_start": record.unique_until_start,
    }


def row_record(row: Any) -> JobRecord:
    """Rebuild a record from a result row."""
    values = row._mapping
    ref = None
    if values["ref_server"] is not None:
        ref = BrokerRef(server_id=values["ref_server"], job_id=int(values["ref_job"]))
    return JobRecord(
        key=values["key"],
        job_type=values["job_type"],
        payload=bytes(values["payload"]),
        codec=values["codec"],
        priority=int(values["priority"]),
        delay=float(values["delay"]),
        ttr=int(values["ttr"]),
        created_at=float(values["created_at"]),
        attempts=int(values["attempts"]),
        last_error=values["last_error"],
        ref=ref,
        state="buried" if values["state"] == "buried" else "enqueued",
        updated_at=float(values["updated_at"]),
        unique_until_start=values["unique_until_start"],
    )


def too_large(orig: BaseException | None) -> bool:
    """Whether a DB-API error says a value was over the backend's size limit."""
    if orig is None:
        return False
    code = orig.args[0] if orig.args else None
    sqlstate = getattr(orig, "sqlstate", None) or ""
    return (
        code in (1153, 1301)  # MySQL: packet bigger than max_allowed_packet
        or sqlstate.startswith("54")  # PostgreSQL: program_limit_exceeded
        or "too big" in str(orig)  # SQLite: string or blob too big
    )


def sighting_rows(sightings: Mapping[str, ServerSighting]) -> dict[str, str]:
    """Meta table rows (name -> value) of server sightings; those too long are left out."""
    rows = {}
    for server_id, sighting in sightings.items():
        name = SIGHTING_PREFIX + server_id
        value = json.dumps([sighting.address, sighting.seen_at])
        if len(name) <= 64 and len(value) <= 255:
            rows[name] = value
    return rows


def sightings_of(rows: Iterable[Any]) -> dict[str, ServerSighting]:
    """Server sightings from meta table rows (name, value) named ``server:<id>``."""
    seen = {}
    for name, value in rows:
        address, seen_at = json.loads(value)
        seen[name[len(SIGHTING_PREFIX) :]] = ServerSighting(str(address), float(seen_at))
    return seen


def upsert_meta(conn: sa.Connection, table: sa.Table, rows: Mapping[str, str]) -> None:
    """Insert or replace meta table rows (name -> value), by each dialect's upsert, in name
    order (two writers lock the rows in one order)."""
    values = [{"name": name, "value": rows[name]} for name in sorted(rows)]
    dialect = conn.dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["name"], set_={"value": statement.excluded.value}
        )
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["name"], set_={"value": statement.excluded.value}
        )
    elif dialect in _MYSQL:
        statement = mysql.insert(table)
        statement = statement.on_duplicate_key_update(value=statement.inserted.value)
    else:  # another backend: replace in the same transaction
        conn.execute(sa.delete(table).where(table.c.name.in_(sorted(rows))))
        statement = sa.insert(table)
    for value in values:
        conn.execute(statement, value)
