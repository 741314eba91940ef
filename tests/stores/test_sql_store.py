"""SQLStore specifics: schema, indexes, SQLite sharing, limits, and errors without secrets."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa

from kqueue.errors import RecordTooLargeError, StoreConnectionError, StoreError
from kqueue.stores._sql_schema import too_large
from kqueue.stores.base import UniqueClaim
from kqueue.stores.sql import SQLStore
from tests.contract.records import make_record
from tests.servers import free_port, missing_service

SQL_KINDS = ["sqlite", "postgres", "mysql"]


@pytest.fixture(params=SQL_KINDS)
def sql_url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each SQL kind in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def sql_store(sql_url: str) -> Iterator[SQLStore]:
    with SQLStore(sql_url) as store:
        yield store


def test_first_use_creates_tables_and_records_the_schema_version(sql_store: SQLStore) -> None:
    assert sql_store.count() == 0
    meta = sql_store.tables.meta
    with sql_store.engine.connect() as conn:
        rows = conn.execute(sa.select(meta.c.name, meta.c.value)).all()
    assert [tuple(row) for row in rows] == [("schema_version", "3")]
    assert sql_store.schema_version == 3


def test_records_table_has_key_primary_key_and_job_type_key_index(sql_store: SQLStore) -> None:
    sql_store.count()
    inspector = sa.inspect(sql_store.engine)
    assert inspector.get_pk_constraint("kqueue_records")["constrained_columns"] == ["key"]
    indexes = {tuple(index["column_names"]) for index in inspector.get_indexes("kqueue_records")}
    assert ("job_type", "key") in indexes
    assert set(inspector.get_table_names()) >= {
        "kqueue_records",
        "kqueue_suspended",
        "kqueue_meta",
    }


def test_payload_column_is_raw_binary_big_enough_for_large_payloads(sql_store: SQLStore) -> None:
    sql_store.count()
    columns = {
        c["name"]: c["type"] for c in sa.inspect(sql_store.engine).get_columns("kqueue_records")
    }
    expected = {"sqlite": "BLOB", "postgresql": "BYTEA", "mysql": "LONGBLOB", "mariadb": "LONGBLOB"}
    assert type(columns["payload"]).__name__ == expected[sql_store.dialect]


def test_several_stores_creating_the_schema_at_once_all_succeed(sql_url: str) -> None:
    errors: list[BaseException] = []
    stores = [SQLStore(sql_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def first_use(store: SQLStore) -> None:
        try:
            barrier.wait(timeout=10)
            store.put(make_record(f"k{id(store)}"))
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert errors == []
        assert stores[0].count() == 4
        assert stores[0].schema_version == 3
    finally:
        for store in stores:
            store.close()


def test_a_duplicate_key_error_keeps_the_driver_error_as_its_cause(sql_store: SQLStore) -> None:
    sql_store.put(make_record("k1"))
    with pytest.raises(StoreError) as caught:
        sql_store.put(make_record("k1"))
    assert isinstance(caught.value.__cause__, sa.exc.IntegrityError)


def test_a_newer_schema_version_is_refused(sqlite_url: str) -> None:
    with SQLStore(sqlite_url) as store:
        store.count()
        meta = store.tables.meta
        with store.engine.begin() as conn:
            conn.execute(sa.update(meta).values(value="99"))
    with SQLStore(sqlite_url) as newer, pytest.raises(StoreError, match="upgrade kqueue"):
        newer.count()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    with SQLStore(sqlite_url, busy_timeout=7.5) as store:
        store.count()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7500


_WRITER = """
import sys
from kqueue.stores._sql_schema import too_large
from kqueue.stores.base import UniqueClaim
from kqueue.stores.sql import SQLStore
from tests.contract.records import make_record
with SQLStore(sys.argv[1]) as store:
    for i in range(40):
        store.put(make_record(f"{sys.argv[2]}-{i:03d}"))
"""


def test_several_processes_share_one_sqlite_file(sqlite_url: str) -> None:
    root = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, sqlite_url, f"w{n}"], cwd=root)
        for n in range(3)
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0]
    with SQLStore(sqlite_url) as store:
        assert store.count() == 120


def test_record_over_max_record_bytes_is_refused_and_nothing_is_written(sqlite_url: str) -> None:
    with SQLStore(sqlite_url, max_record_bytes=20_000) as store:
        with pytest.raises(RecordTooLargeError):
            store.put_many([make_record("small"), make_record("big", payload=b"x" * 20_000)])
        assert store.count() == 0
        store.put(make_record("fits", payload=b"x" * 10_000))


def test_mysql_refuses_a_record_over_max_allowed_packet_before_sending(mysql_url: str) -> None:
    with SQLStore(mysql_url) as store:
        too_big = store.max_record_bytes // 2 + 1
        started = time.monotonic()
        with pytest.raises(RecordTooLargeError, match="limit"):
            store.put(make_record("big", payload=b"\x00" * too_big))
        assert time.monotonic() - started < 5
        assert store.get("big") is None
        store.put(make_record("after"))


def test_mysql_limit_above_max_allowed_packet_is_lowered_to_it(mysql_url: str) -> None:
    with SQLStore(mysql_url) as honest, SQLStore(mysql_url, max_record_bytes=10**9) as store:
        assert store.max_record_bytes == honest.max_record_bytes < 10**9


def test_a_size_error_from_the_driver_becomes_record_too_large(sqlite_url: str) -> None:
    if sys.version_info < (3, 11):
        missing_service("sqlite3's setlimit (Python 3.11 or newer)")
    with SQLStore(sqlite_url) as store:

        def small_limit(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            limit_length = getattr(sqlite3, "SQLITE_LIMIT_LENGTH")  # noqa: B009 (3.11+)
            getattr(dbapi_conn, "setlimit")(limit_length, 4096)  # noqa: B009

        sa.event.listen(store.engine, "connect", small_limit)
        store.put(make_record("small"))
        with pytest.raises(RecordTooLargeError) as caught:
            store.put_many([make_record("ok"), make_record("big", payload=b"x" * 5000)])
        assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
        assert store.count() == 1


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(1153, "Got a packet bigger than 'max_allowed_packet' bytes"),
        psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum"),
    ],
    ids=["mysql-1153", "postgres-54000"],
)
def test_size_errors_of_server_drivers_are_recognised(error: Exception) -> None:
    assert too_large(error)


def test_other_driver_errors_are_not_size_errors() -> None:
    assert not too_large(pymysql.err.OperationalError(2003, "Can't connect"))
    assert not too_large(None)


@pytest.mark.parametrize(
    "scheme",
    [
        "postgresql+psycopg://app:secret@127.0.0.1:{port}/db",
        "mysql+pymysql://app:secret@127.0.0.1:{port}/db",
    ],
)
def test_unreachable_server_fails_fast_with_a_redacted_address(scheme: str) -> None:
    port = free_port()
    store = SQLStore(scheme.format(port=port))
    assert "secret" not in repr(store)
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as caught:
        store.put(make_record("k1"))
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "secret" not in message
    assert ":***@" in message


def test_a_version_1_database_gains_the_unique_keys_when_a_store_opens_it(sql_url: str) -> None:
    with SQLStore(sql_url) as old:  # made as kqueue 1 left it: no unique table, no column
        old.put(make_record("k1"))
        with old.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE kqueue_unique"))
            conn.execute(sa.text("ALTER TABLE kqueue_records DROP COLUMN unique_until_start"))
            conn.execute(sa.update(old.tables.meta).values(value="1"))
    with SQLStore(sql_url) as store:
        assert store.schema_version == 3
        assert store.get("k1") == make_record("k1")
        claim = UniqueClaim("nightly", "start")
        record = make_record("k2", unique_until_start="nightly")
        assert store.put_unique([record], [claim], now=1.0) == [None]
        assert store.put_unique([make_record("k3")], [claim], now=1.0) == ["k2"]
        assert store.get("k2") == record
