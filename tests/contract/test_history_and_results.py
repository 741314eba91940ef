"""The store contract's failure histories and kept results, checked against every store."""

from __future__ import annotations

import threading

from kqueue.stores import BrokerRef, Store
from kqueue.stores.base import MAX_FAILURES, AttemptFailure, StoredResult
from tests.contract.records import make_record


def _failure(attempt: int, message: str = "boom") -> AttemptFailure:
    return AttemptFailure(
        at=1_700_000_000.5 + attempt,
        attempt=attempt,
        worker="host-1:4242",
        error_type="builtins.ValueError",
        message=message,
        traceback='Traceback (most recent call last):\n  File "app.py", line 3\nValueError: boom\n',
    )


def test_record_failure_sets_the_attempt_and_appends_to_the_history(store: Store) -> None:
    store.put(make_record("k1"))
    assert store.record_failure(
        "k1", _failure(1), attempts=1, last_error="ValueError: boom", state="enqueued", now=5.0
    )
    record = store.get("k1")
    assert record is not None
    assert (record.attempts, record.last_error, record.state, record.updated_at) == (
        1,
        "ValueError: boom",
        "enqueued",
        5.0,
    )
    assert store.get_failures("k1") == [_failure(1)]


def test_the_history_keeps_the_newest_failures_oldest_first(store: Store) -> None:
    store.put(make_record("k1"))
    for attempt in range(1, MAX_FAILURES + 4):
        store.record_failure(
            "k1", _failure(attempt), attempts=attempt, last_error="x", state="enqueued", now=1.0
        )
    kept = store.get_failures("k1")
    assert [failure.attempt for failure in kept] == list(range(4, MAX_FAILURES + 4))


def test_the_history_survives_other_writes_to_the_record(store: Store) -> None:
    """Recovery swaps references and kicks reset attempts: the history stays."""
    store.put(make_record("k1"))
    store.record_failure("k1", _failure(1), attempts=1, last_error="x", state="buried", now=1.0)
    assert store.swap_reference("k1", None, None, now=2.0)
    assert store.swap_reference("k1", None, BrokerRef("server-b", 9), now=3.0)
    assert store.record_attempt("k1", attempts=0, last_error=None, state="enqueued", now=4.0)
    assert store.get_failures("k1") == [_failure(1)]
    record = store.get("k1")
    assert record is not None and record.attempts == 0


def test_unicode_and_long_texts_round_trip_in_the_history(store: Store) -> None:
    store.put(make_record("k1"))
    failure = _failure(1, message="ünïcode ☃ \x00 " + "y" * 5000)
    store.record_failure("k1", failure, attempts=1, last_error="e", state="enqueued", now=1.0)
    assert store.get_failures("k1") == [failure]


def test_record_failure_of_a_missing_record_returns_false_and_keeps_nothing(store: Store) -> None:
    assert not store.record_failure(
        "gone", _failure(1), attempts=1, last_error="x", state="buried", now=1.0
    )
    assert store.get_failures("gone") == []
    assert store.get("gone") is None


def test_a_deleted_record_takes_its_history_with_it(store: Store) -> None:
    store.put(make_record("k1"))
    store.record_failure("k1", _failure(1), attempts=1, last_error="x", state="enqueued", now=1.0)
    assert store.delete("k1")
    store.put(make_record("k1"))
    assert store.get_failures("k1") == []


def test_concurrent_failures_of_one_record_are_all_kept(store: Store) -> None:
    store.put(make_record("k1"))

    def fail(attempt: int) -> None:
        store.record_failure(
            "k1", _failure(attempt), attempts=attempt, last_error="x", state="enqueued", now=1.0
        )

    threads = [threading.Thread(target=fail, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(f.attempt for f in store.get_failures("k1")) == [1, 2, 3, 4, 5, 6]


def _result(expires_at: float, payload: bytes = b'{"sent":true}') -> StoredResult:
    return StoredResult("done", payload, "json", finished_at=1_000.0, expires_at=expires_at)


def test_a_kept_result_comes_back_until_it_expires(store: Store) -> None:
    store.put_result("k1", _result(expires_at=4_102_444_800.0))  # 2100
    assert store.get_result("k1", now=2_000_000_000.0) == _result(4_102_444_800.0)
    assert store.get_result("k1", now=4_102_444_800.0) is None
    assert store.get_result("other", now=2_000_000_000.0) is None


def test_a_result_replaces_the_one_kept_before(store: Store) -> None:
    store.put_result("k1", _result(4_102_444_800.0, b"1"))
    failed = StoredResult("failed", b'{"message":"x"}', "json", 1_001.0, 4_102_444_900.0)
    store.put_result("k1", failed)
    assert store.get_result("k1", now=2_000_000_000.0) == failed


def test_results_live_apart_from_records(store: Store) -> None:
    store.put(make_record("k1"))
    store.put_result("k1", _result(4_102_444_800.0, bytes(range(256))))
    assert store.delete("k1")
    kept = store.get_result("k1", now=2_000_000_000.0)
    assert kept is not None and kept.payload == bytes(range(256))
    assert store.count() == 0
