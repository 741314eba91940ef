"""The store contract (kqueue/stores/base.py), checked against every store kind alike."""

from __future__ import annotations

import dataclasses
import os
import random
import threading

import pytest

from kqueue.errors import RecordTooLargeError, StoreError
from kqueue.stores import BrokerRef, JobRecord, MemoryStore, Store
from kqueue.stores.base import new_record
from tests.contract.records import make_record

REF_A = BrokerRef(server_id="a1b2c3d4e5f60718", job_id=7)
REF_B = BrokerRef(server_id="a1b2c3d4e5f60718", job_id=8)
REF_OTHER_SERVER = BrokerRef(server_id="ffffffffffffffff", job_id=7)


def test_store_satisfies_the_store_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_get_returns_the_record_that_was_put_with_every_field(store: Store) -> None:
    record = make_record(
        "k1",
        job_type="reports.monthly",
        codec="bytes",
        priority=2**32 - 1,
        delay=12.5,
        ttr=2**32 - 1,
        created_at=1_712_345_678.123456,
        attempts=3,
        last_error="ValueError: ünïcode ☃ message",
        ref=REF_A,
        state="buried",
        updated_at=1_712_345_999.654321,
    )
    store.put(record)
    assert store.get("k1") == record


def test_get_of_a_missing_key_returns_none(store: Store) -> None:
    assert store.get("nope") is None


def test_put_of_an_existing_key_raises_and_keeps_the_original(store: Store) -> None:
    original = make_record("k1", payload=b"first")
    store.put(original)
    with pytest.raises(StoreError):
        store.put(make_record("k1", payload=b"second", job_type="other"))
    assert store.get("k1") == original
    assert store.count() == 1
    assert store.count("other") == 0


def test_put_many_writes_every_record(store: Store) -> None:
    records = [make_record(f"k{i}", job_type=f"t{i % 2}") for i in range(10)]
    store.put_many(records)
    assert store.get_many([r.key for r in records]) == {r.key: r for r in records}
    assert store.count() == 10


def test_put_many_with_one_existing_key_writes_nothing(store: Store) -> None:
    store.put(make_record("k5"))
    with pytest.raises(StoreError):
        store.put_many([make_record(f"k{i}", job_type="batch") for i in range(10)])
    assert store.count() == 1
    assert store.count("batch") == 0
    assert store.get("k0") is None


def test_put_many_with_the_same_key_twice_writes_nothing(store: Store) -> None:
    with pytest.raises(StoreError):
        store.put_many([make_record("a"), make_record("b"), make_record("a")])
    assert store.count() == 0


def test_put_many_of_nothing_does_nothing(store: Store) -> None:
    store.put_many([])
    assert store.count() == 0


def test_get_many_returns_only_the_records_that_exist(store: Store) -> None:
    store.put_many([make_record("a"), make_record("b")])
    found = store.get_many(["a", "missing", "b", "a"])
    assert sorted(found) == ["a", "b"]
    assert found["b"] == make_record("b")
    assert store.get_many([]) == {}


def test_get_many_handles_more_keys_than_one_query_takes(store: Store) -> None:
    store.put_many([make_record(f"k{i:04d}") for i in range(1200)])
    found = store.get_many([f"k{i:04d}" for i in range(0, 1300)])
    assert len(found) == 1200


def test_delete_removes_a_record_once(store: Store) -> None:
    store.put(make_record("k1"))
    assert store.delete("k1") is True
    assert store.get("k1") is None
    assert store.delete("k1") is False
    assert store.count() == 0
    assert store.count("email") == 0
    assert store.scan() == []


def test_delete_many_counts_only_records_that_existed(store: Store) -> None:
    store.put_many([make_record(f"k{i}") for i in range(5)])
    assert store.delete_many(["k0", "k1", "missing", "k1"]) == 2
    assert store.delete_many([]) == 0
    assert sorted(r.key for r in store.scan()) == ["k2", "k3", "k4"]
    assert store.count("email") == 3


def test_a_deleted_key_can_be_put_again(store: Store) -> None:
    store.put(make_record("k1", job_type="old"))
    store.delete("k1")
    store.put(make_record("k1", job_type="new"))
    assert [r.key for r in store.scan(job_type="new")] == ["k1"]
    assert store.scan(job_type="old") == []


def test_swap_reference_sets_the_reference_when_expected_matches(store: Store) -> None:
    store.put(make_record("k1", state="buried"))
    assert store.swap_reference("k1", None, REF_A, now=5.0) is True
    record = store.get("k1")
    assert record is not None
    assert (record.ref, record.state, record.updated_at) == (REF_A, "buried", 5.0)
    assert store.swap_reference("k1", REF_A, REF_B, now=6.0) is True
    assert store.swap_reference("k1", REF_B, None, now=7.0) is True
    record = store.get("k1")
    assert record is not None
    assert (record.ref, record.updated_at) == (None, 7.0)


def test_swap_reference_refuses_when_the_reference_differs(store: Store) -> None:
    store.put(make_record("k1", ref=REF_A, updated_at=1.0))
    assert store.swap_reference("k1", None, REF_B, now=5.0) is False
    assert store.swap_reference("k1", REF_B, None, now=5.0) is False
    assert store.swap_reference("k1", REF_OTHER_SERVER, REF_B, now=5.0) is False
    assert store.get("k1") == make_record("k1", ref=REF_A, updated_at=1.0)


def test_swap_reference_to_the_same_reference_still_succeeds(store: Store) -> None:
    store.put(make_record("k1", ref=REF_A))
    assert store.swap_reference("k1", REF_A, REF_A, now=2.0) is True


def test_swap_reference_of_a_missing_record_returns_false(store: Store) -> None:
    assert store.swap_reference("gone", None, REF_A, now=1.0) is False
    assert store.get("gone") is None


def _race_swaps(store: Store, key: str, workers: int) -> dict[int, bool]:
    """Let ``workers`` threads swap the reference of ``key`` from None at the same moment."""
    barrier = threading.Barrier(workers)
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def swap(worker: int) -> None:
        try:
            barrier.wait(timeout=10)
            ref = BrokerRef(server_id=f"srv{worker}", job_id=worker)
            results[worker] = store.swap_reference(key, None, ref, now=float(worker))
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=swap, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return results


def test_concurrent_swaps_from_threads_have_exactly_one_winner(store: Store) -> None:
    for round_number in range(3):
        key = f"race{round_number}"
        store.put(make_record(key))
        results = _race_swaps(store, key, workers=8)
        winners = [worker for worker, won in results.items() if won]
        assert len(results) == 8
        assert len(winners) == 1
        record = store.get(key)
        assert record is not None
        assert record.ref == BrokerRef(server_id=f"srv{winners[0]}", job_id=winners[0])


def test_record_attempt_stores_attempts_error_and_state(store: Store) -> None:
    store.put(make_record("k1", ref=REF_A))
    assert store.record_attempt("k1", attempts=2, last_error="boom", state="buried", now=9.5)
    record = store.get("k1")
    assert record is not None
    assert (record.attempts, record.last_error, record.state, record.updated_at) == (
        2,
        "boom",
        "buried",
        9.5,
    )
    assert record.ref == REF_A
    assert store.record_attempt("k1", attempts=3, last_error=None, state="enqueued", now=10.0)
    record = store.get("k1")
    assert record is not None
    assert (record.attempts, record.last_error, record.state) == (3, None, "enqueued")


def test_record_attempt_of_a_missing_record_returns_false(store: Store) -> None:
    assert not store.record_attempt("gone", attempts=1, last_error="x", state="buried", now=1.0)
    assert store.get("gone") is None


KEYS = ["b", "a", "B", "A", "a0", "a-1", "ä", "z", "Z9", "é", "☃", "0", "a_b", "k10", "k9"]


def test_scan_pages_through_every_record_in_ascending_key_order(store: Store) -> None:
    shuffled = KEYS[:]
    random.Random(4).shuffle(shuffled)
    store.put_many([make_record(key, job_type=f"t{i % 3}") for i, key in enumerate(shuffled)])
    seen: list[str] = []
    after: str | None = None
    while True:
        page = store.scan(after=after, limit=4)
        assert len(page) <= 4
        if not page:
            break
        seen += [record.key for record in page]
        after = page[-1].key
    assert seen == sorted(KEYS)


def test_scan_returns_keys_strictly_after_the_bound(store: Store) -> None:
    store.put_many([make_record(key) for key in ["a", "b", "c", "d"]])
    assert [r.key for r in store.scan(after="b", limit=10)] == ["c", "d"]
    assert [r.key for r in store.scan(after="bb", limit=1)] == ["c"]
    assert [r.key for r in store.scan(after="", limit=2)] == ["a", "b"]
    assert store.scan(after="d") == []
    assert store.scan(limit=0) == []
    assert store.scan() == [make_record(key) for key in ["a", "b", "c", "d"]]


def test_scan_with_job_type_returns_only_that_type_in_key_order(store: Store) -> None:
    shuffled = KEYS[:]
    random.Random(7).shuffle(shuffled)
    store.put_many([make_record(key, job_type=f"t{i % 3}") for i, key in enumerate(shuffled)])
    expected = sorted(key for i, key in enumerate(shuffled) if i % 3 == 1)
    seen: list[str] = []
    after: str | None = None
    while page := store.scan(after=after, limit=2, job_type="t1"):
        assert all(record.job_type == "t1" for record in page)
        seen += [record.key for record in page]
        after = page[-1].key
    assert seen == expected
    assert store.scan(job_type="unknown") == []


def test_job_types_differing_only_in_case_are_distinct(store: Store) -> None:
    store.put_many([make_record("k1", job_type="Email"), make_record("k2", job_type="email")])
    assert [r.key for r in store.scan(job_type="email")] == ["k2"]
    assert store.count("Email") == 1


def test_count_counts_all_records_or_one_job_type(store: Store) -> None:
    assert store.count() == 0
    store.put_many([make_record(f"k{i}", job_type="a" if i < 3 else "b") for i in range(5)])
    assert (store.count(), store.count("a"), store.count("b"), store.count("c")) == (5, 3, 2, 0)
    store.delete("k0")
    assert (store.count(), store.count("a")) == (4, 2)


def test_suspensions_are_remembered_until_lifted(store: Store) -> None:
    assert store.suspended() == set()
    store.set_suspended("email", True)
    store.set_suspended("email", True)
    store.set_suspended("reports", True)
    assert store.suspended() == {"email", "reports"}
    store.set_suspended("email", False)
    store.set_suspended("never", False)
    assert store.suspended() == {"reports"}


@pytest.mark.parametrize(
    "payload",
    [bytes(range(256)), bytes(range(255, -1, -1)) * 4, b"", b"\x00", b"'\"\\\x1a\r\n"],
    ids=["all-bytes", "all-bytes-reversed", "empty", "nul", "sql-escapes"],
)
def test_binary_payloads_round_trip_unchanged(store: Store, payload: bytes) -> None:
    store.put(make_record("bin", payload=payload))
    record = store.get("bin")
    assert record is not None
    assert record.payload == payload
    assert type(record.payload) is bytes


def test_a_ten_megabyte_payload_round_trips_or_is_refused_whole(store: Store) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    limit = getattr(store, "max_record_bytes", None)
    if (
        limit is not None
        and limit < 2 * len(payload) + 8192
        and getattr(store, "dialect", "") in ("mysql", "mariadb")
    ):
        # PyMySQL sends bytes as hex: 10 MB needs max_allowed_packet > 20 MB on the server.
        with pytest.raises(RecordTooLargeError):
            store.put(make_record("big", payload=payload))
        assert store.get("big") is None
        return
    store.put(make_record("big", payload=payload))
    record = store.get("big")
    assert record is not None
    assert record.payload == payload
    assert store.scan(limit=1)[0].payload == payload


def test_a_closed_store_can_be_used_as_a_context_manager(store: Store) -> None:
    with store as entered:  # type: ignore[attr-defined]
        assert entered is store
        entered.put(make_record("k1"))


def test_memory_store_is_the_reference_for_this_suite() -> None:
    # Guards the parametrisation: the suite must always include the reference implementation.
    from tests.contract.conftest import STORE_KINDS

    assert STORE_KINDS[0] == "memory"
    assert isinstance(MemoryStore(), Store)


def test_swap_references_applies_each_compare_and_set_on_its_own(store: Store) -> None:
    store.put_many([make_record("k1"), make_record("k2", ref=REF_A), make_record("k3")])
    swaps = [
        ("k1", None, REF_A),  # from no reference: succeeds
        ("k2", REF_A, REF_B),  # from the current reference: succeeds
        ("k3", REF_A, REF_B),  # from a reference it does not have: refused
        ("gone", None, REF_A),  # a missing record: refused, not an error
    ]
    assert store.swap_references(swaps, now=9.0) == 2
    records = store.get_many(["k1", "k2", "k3"])
    assert (records["k1"].ref, records["k1"].updated_at) == (REF_A, 9.0)
    assert (records["k2"].ref, records["k2"].updated_at) == (REF_B, 9.0)
    assert records["k3"] == make_record("k3")
    assert store.get("gone") is None


def test_swap_references_of_new_jobs_skip_gone_and_already_referenced_records(
    store: Store,
) -> None:
    # The shape add_jobs sends: every swap from no reference to the same server.
    store.put_many([make_record("k1"), make_record("k2", ref=REF_A), make_record("k3")])
    refs = [BrokerRef(REF_B.server_id, n) for n in (11, 12, 13, 14)]
    swaps = [("k1", None, refs[0]), ("k2", None, refs[1]), ("gone", None, refs[2])]
    swaps.append(("k3", None, refs[3]))
    assert store.swap_references(swaps, now=5.0) == 2
    records = store.get_many(["k1", "k2", "k3"])
    assert (records["k1"].ref, records["k1"].updated_at) == (refs[0], 5.0)
    assert records["k2"] == make_record("k2", ref=REF_A)  # a reference it did not expect
    assert (records["k3"].ref, records["k3"].updated_at) == (refs[3], 5.0)
    assert store.get("gone") is None


def test_put_many_keeps_every_field_of_records_alike_or_not(store: Store) -> None:
    # Records that differ only in key, payload and codec (add_jobs), then a batch where one
    # record differs in a shared field: each must read back exactly as written.
    alike = [
        make_record(f"a{n}", payload=bytes([n]) * n, codec="raw" if n % 2 else "json")
        for n in range(5)
    ]
    mixed = [make_record(f"m{n}", priority=n, delay=n / 4, attempts=n) for n in range(3)]
    mixed.append(make_record("m3", state="buried", created_at=1.5, updated_at=2.5))
    for batch in (alike, mixed):
        store.put_many(batch)
        assert store.get_many([r.key for r in batch]) == {r.key: r for r in batch}


def test_swap_references_can_clear_references_and_takes_an_empty_batch(store: Store) -> None:
    store.put(make_record("k1", ref=REF_A))
    assert store.swap_references([], now=1.0) == 0
    assert store.swap_references([("k1", REF_A, None)], now=2.0) == 1
    record = store.get("k1")
    assert record is not None
    assert (record.ref, record.updated_at) == (None, 2.0)


def test_swap_references_handles_a_large_batch(store: Store) -> None:
    keys = [f"key{n:05d}" for n in range(1200)]
    store.put_many([make_record(key) for key in keys])
    refs = {key: BrokerRef(server_id="srv", job_id=n + 1) for n, key in enumerate(keys)}
    assert store.swap_references([(k, None, refs[k]) for k in keys], now=3.0) == len(keys)
    found = store.get_many(keys)
    assert all(found[key].ref == refs[key] for key in keys)


def test_new_record_is_the_record_the_constructor_builds() -> None:
    # new_record() fills __dict__ and skips __init__: nothing may hide in a __post_init__.
    assert not hasattr(JobRecord, "__post_init__")
    built = new_record("k1", "email", b"{}", "json", priority=5, delay=2.0, ttr=30, now=7.5)
    assert built == JobRecord(
        key="k1",
        job_type="email",
        payload=b"{}",
        codec="json",
        priority=5,
        delay=2.0,
        ttr=30,
        created_at=7.5,
        updated_at=7.5,
    )
    assert repr(built) == repr(
        make_record(
            "k1", payload=b"{}", priority=5, delay=2.0, ttr=30, created_at=7.5, updated_at=7.5
        )
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.attempts = 3  # type: ignore[misc]


def _keys_referencing(store: Store, server_id: str | None) -> list[str]:
    return [record.key for record in store.scan_referencing(server_id, limit=1000)]


def test_records_are_indexed_by_the_server_their_reference_names(store: Store) -> None:
    store.put_many([make_record(f"k{i}") for i in range(4)])
    store.put(make_record("old", ref=REF_OTHER_SERVER))
    assert store.referenced_servers() == {REF_OTHER_SERVER.server_id}
    assert _keys_referencing(store, None) == ["k0", "k1", "k2", "k3"]
    store.swap_references([("k1", None, REF_A), ("k3", None, REF_B)], now=1.0)
    store.swap_reference("k2", None, BrokerRef("claim:abc", 99), now=1.0)
    assert store.referenced_servers() == {REF_A.server_id, "ffffffffffffffff", "claim:abc"}
    assert _keys_referencing(store, REF_A.server_id) == ["k1", "k3"]
    assert _keys_referencing(store, "claim:abc") == ["k2"]
    assert _keys_referencing(store, None) == ["k0"]
    assert [r.ref for r in store.scan_referencing(REF_A.server_id)] == [REF_A, REF_B]


def test_the_server_index_follows_swaps_and_deletes(store: Store) -> None:
    store.put_many([make_record("a"), make_record("b")])
    store.swap_references([("a", None, REF_A), ("b", None, REF_B)], now=1.0)
    store.swap_reference("a", REF_A, REF_OTHER_SERVER, now=2.0)
    store.swap_reference("b", REF_A, None, now=2.0)  # expected differs: nothing moves
    assert _keys_referencing(store, REF_OTHER_SERVER.server_id) == ["a"]
    assert _keys_referencing(store, REF_A.server_id) == ["b"]
    store.delete("b")
    assert store.referenced_servers() == {REF_OTHER_SERVER.server_id}
    store.swap_reference("a", REF_OTHER_SERVER, None, now=3.0)
    assert store.referenced_servers() == set()
    assert _keys_referencing(store, None) == ["a"]
    store.delete_many(["a"])
    assert _keys_referencing(store, None) == []
    assert store.scan_referencing("nobody") == []


def test_scan_referencing_pages_in_key_order(store: Store) -> None:
    keys = [f"k{i:03d}" for i in range(25)]
    store.put_many([make_record(key) for key in reversed(keys)])
    store.swap_references([(key, None, BrokerRef("s1", i)) for i, key in enumerate(keys)], now=1)
    seen: list[str] = []
    after = None
    while True:
        page = store.scan_referencing("s1", after=after, limit=10)
        seen += [record.key for record in page]
        if len(page) < 10:
            break
        after = page[-1].key
    assert seen == keys
    assert store.scan_referencing("s1", limit=0) == []


def test_a_batch_of_swaps_from_one_server_to_another_moves_only_the_matching_records(
    store: Store,
) -> None:
    store.put_many([make_record(f"k{i}") for i in range(4)])
    store.swap_references([(f"k{i}", None, BrokerRef("old", i)) for i in range(4)], now=1.0)
    store.delete("k3")
    swaps = [(f"k{i}", BrokerRef("old", i), BrokerRef("new", 10 + i)) for i in range(4)]
    swaps[1] = ("k1", BrokerRef("old", 99), BrokerRef("new", 11))  # expects another job
    assert store.swap_references(swaps, now=2.0) == 2
    assert [r.ref for r in store.scan_referencing("new")] == [
        BrokerRef("new", 10),
        BrokerRef("new", 12),
    ]
    assert [r.key for r in store.scan_referencing("old")] == ["k1"]
    assert store.referenced_servers() == {"old", "new"}
    assert store.swap_references([("k1", BrokerRef("old", 1), BrokerRef("new", 11))], now=3) == 1
    assert store.referenced_servers() == {"new"}


def test_scan_referencing_returns_whole_records(store: Store) -> None:
    full = make_record(
        "full",
        job_type="reports.monthly",
        payload=b"\x00\xff raw",
        codec="bytes",
        priority=2**32 - 1,
        delay=12.5,
        ttr=2**32 - 1,
        created_at=1_712_345_678.123456,
        attempts=3,
        last_error="ValueError: ünïcode ☃ message",
        ref=REF_OTHER_SERVER,
        state="buried",
        updated_at=1_712_345_999.654321,
    )
    bare = make_record("bare")
    store.put_many([full, bare])
    assert store.scan_referencing(REF_OTHER_SERVER.server_id) == [full]
    assert store.scan_referencing(None) == [bare]
