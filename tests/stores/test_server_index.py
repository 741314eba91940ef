"""The by-server index recovery reads, on a SQL table made before the index existed."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from kqueue.stores.base import BrokerRef
from kqueue.stores.sql import SQLStore
from tests.contract.records import make_record


def test_a_table_made_by_an_older_kqueue_gets_the_server_index_when_opened(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    with SQLStore(url) as old:
        old.put_many([make_record("a"), make_record("b", ref=BrokerRef("gone", 3))])
        with old.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX kqueue_records_server_key"))
    with SQLStore(url) as store:
        assert store.referenced_servers() == {"gone"}
        found = sa.inspect(store.engine).get_indexes("kqueue_records")
        indexes = {index["name"] for index in found}
        assert "kqueue_records_server_key" in indexes
        assert [record.key for record in store.scan_referencing("gone")] == ["b"]
        assert [record.key for record in store.scan_referencing(None)] == ["a"]


def test_a_version_2_table_gets_the_time_index_and_version_3_when_opened(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'v2.sqlite3'}"
    with SQLStore(url) as old:
        old.put_many([make_record("a", updated_at=5.0), make_record("b", updated_at=4.0)])
        with old.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX kqueue_records_server_updated"))
            conn.execute(sa.text("UPDATE kqueue_meta SET value = '2'"))
    with SQLStore(url) as store:
        assert [record.key for record in store.scan_unscheduled(before=10.0)] == ["b", "a"]
        found = sa.inspect(store.engine).get_indexes("kqueue_records")
        assert "kqueue_records_server_updated" in {index["name"] for index in found}
        with store.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT value FROM kqueue_meta")).scalar()
        assert version == "3"
