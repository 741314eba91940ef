"""A store on SQL databases through SQLAlchemy Core: SQLite, PostgreSQL, MariaDB/MySQL.

One row per record (key as primary key, payload as raw binary: BYTEA, BLOB, LONGBLOB), an index
on ``(job_type, key)`` for per-type scans and one on ``(ref_server, key)`` for recovery, a table
of suspended job types and a meta table with the schema version. Tables are created on
first use. SQLite runs in WAL mode with a busy timeout, so several processes can share one
file. ``swap_reference`` is a single conditional UPDATE, so concurrent sweepers cannot both win.

The store's parts are private modules beside this one: ``_sql_core`` (engine, schema,
transactions, error translation), ``_sql_records``, ``_sql_scans`` and ``_sql_meta`` (the
operations), over ``_sql_schema``, ``_sql_bulk``, ``_sql_unique`` and ``_sql_history``.
"""

from __future__ import annotations

from kqueue.stores._sql_meta import SQLMeta
from kqueue.stores._sql_records import SQLRecords
from kqueue.stores._sql_scans import SQLScans

__all__ = ["SQLStore"]


class SQLStore(SQLRecords, SQLScans, SQLMeta):
    """Job records in a SQL database named by a SQLAlchemy URL.

    ``sqlite:///path/to/file``, ``postgresql://`` (psycopg 3 unless a driver is named),
    ``mysql://`` / ``mariadb://`` (PyMySQL unless a driver is named). Passwords in the URL never
    appear in reprs or error messages. ``table_prefix`` names the tables. ``max_record_bytes``
    caps one record (default: what the backend takes; never above ``max_allowed_packet`` on
    MySQL); larger records raise :class:`RecordTooLargeError` before anything is sent.
    """
