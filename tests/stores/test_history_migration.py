"""A SQL records table made before failure histories and results existed is migrated when
a store opens it: the ``failures`` column and the results table are added, rows kept."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kqueue.stores.base import AttemptFailure, StoredResult
from kqueue.stores.sql import SQLStore
from tests.contract.records import make_record


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mysql"])
def test_an_older_records_table_gets_the_history_column_and_the_results_table(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    with SQLStore(url) as old:
        old.put(make_record("a"))
        with old.engine.begin() as conn:  # back to the first layout
            conn.execute(sa.text("ALTER TABLE kqueue_records DROP COLUMN failures"))
            conn.execute(sa.text("DROP TABLE kqueue_results"))
    failure = AttemptFailure(1.5, 1, "h:1", "builtins.OSError", "down", "")
    with SQLStore(url) as store:
        assert store.get("a") == make_record("a")
        assert store.record_failure(
            "a", failure, attempts=1, last_error="OSError: down", state="enqueued", now=2.0
        )
        assert store.get_failures("a") == [failure]
        store.put_result("a", StoredResult("done", b"1", "json", 2.0, 4_102_444_800.0))
        assert store.get_result("a", now=3.0) is not None
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("kqueue_records")}
        assert "failures" in columns
