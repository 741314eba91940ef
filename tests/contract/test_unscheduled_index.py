"""The store contract's index of records without a reference by time (scan_unscheduled), on
every store kind: what a recovery pass reads instead of every record never scheduled."""

from __future__ import annotations

from kqueue.stores import BrokerRef, JobRecord, Store
from kqueue.stores.base import UniqueClaim, UnscheduledCursor, new_record, unscheduled_cursor
from tests.contract.records import make_record

CLAIM = BrokerRef("claim:abc:99", 99)


def _keys(store: Store, before: float, after: UnscheduledCursor | None = None) -> list[str]:
    return [r.key for r in store.scan_unscheduled(before=before, after=after, limit=1000)]


def _all_pages(store: Store, before: float, limit: int) -> list[str]:
    seen: list[str] = []
    after: UnscheduledCursor | None = None
    while True:
        page = store.scan_unscheduled(before=before, after=after, limit=limit)
        seen += [record.key for record in page]
        if len(page) < limit:
            return seen
        after = unscheduled_cursor(page[-1])


def test_scan_unscheduled_returns_only_records_without_a_reference_written_before(
    store: Store,
) -> None:
    store.put_many([make_record(f"old{i}", updated_at=100.0 + i) for i in range(3)])
    store.put(make_record("young", updated_at=500.0))
    store.put(make_record("scheduled", updated_at=50.0, ref=BrokerRef("s1", 1)))
    assert _keys(store, before=200.0) == ["old0", "old1", "old2"]
    assert _keys(store, before=101.0) == ["old0"]  # strictly before
    assert _keys(store, before=1000.0) == ["old0", "old1", "old2", "young"]
    assert store.scan_unscheduled(before=1000.0, limit=0) == []


def test_scan_unscheduled_orders_by_time_then_key_and_returns_whole_records(
    store: Store,
) -> None:
    records = [
        make_record("b", updated_at=20.0),
        make_record("a", updated_at=20.0, created_at=5.0, attempts=2, last_error="boom"),
        make_record("z", updated_at=10.5, state="buried", priority=7),
    ]
    store.put_many(records)
    assert store.scan_unscheduled(before=30.0) == [records[2], records[1], records[0]]


def test_the_time_index_follows_swaps_and_deletes(store: Store) -> None:
    store.put_many([make_record(k, updated_at=10.0) for k in ("a", "b", "c")])
    store.swap_references([("a", None, BrokerRef("s1", 1)), ("b", None, CLAIM)], now=11.0)
    assert _keys(store, before=100.0) == ["c"]
    # Handed back (a claim released, a reference cleared): indexed at the swap's time.
    assert store.swap_reference("b", CLAIM, None, now=40.0)
    assert store.swap_reference("a", BrokerRef("s1", 1), None, now=30.0)
    assert _keys(store, before=100.0) == ["c", "a", "b"]
    assert _keys(store, before=35.0) == ["c", "a"]
    store.delete("c")
    store.delete_many(["a"])
    assert _keys(store, before=100.0) == ["b"]
    assert store.swap_reference("b", None, BrokerRef("s2", 5), now=50.0)
    assert _keys(store, before=100.0) == []


def test_records_written_as_add_jobs_writes_them_are_indexed_by_time(store: Store) -> None:
    batch = [
        new_record(f"k{i}", "email", b"{}", "json", priority=1, delay=0, ttr=60, now=7.25)
        for i in range(5)
    ]
    store.put_many(batch)
    held = [
        new_record(f"u{i}", "email", b"{}", "json", priority=1, delay=0, ttr=60, now=8.5)
        for i in range(2)
    ]
    assert store.put_unique(held, [UniqueClaim("one"), None], now=8.5) == [None, None]
    assert _keys(store, before=8.0) == [f"k{i}" for i in range(5)]
    assert _keys(store, before=9.0) == [*(f"k{i}" for i in range(5)), "u0", "u1"]
    store.swap_references([(f"k{i}", None, BrokerRef("s1", i)) for i in range(5)], now=9.0)
    assert _keys(store, before=9.0) == ["u0", "u1"]


def test_scan_unscheduled_pages_through_records_of_one_time_and_of_many(store: Store) -> None:
    same = [make_record(f"s{i:02d}", updated_at=5.0) for i in range(23)]
    spread = [make_record(f"t{i:02d}", updated_at=6.0 + i % 4) for i in range(17)]
    store.put_many(same + spread)
    expected = sorted(same + spread, key=unscheduled_cursor)
    assert _all_pages(store, before=100.0, limit=5) == [r.key for r in expected]
    assert _all_pages(store, before=100.0, limit=1000) == [r.key for r in expected]


def test_records_leaving_the_index_between_pages_disturb_no_page(store: Store) -> None:
    records = [make_record(f"k{i:02d}", updated_at=5.0 + i // 7) for i in range(30)]
    store.put_many(records)
    seen: list[JobRecord] = []
    after: UnscheduledCursor | None = None
    while True:
        page = store.scan_unscheduled(before=100.0, after=after, limit=4)
        seen += page
        # As a sweeper does: every record of the page is claimed (it leaves the index).
        store.swap_references([(r.key, None, CLAIM) for r in page], now=200.0)
        if len(page) < 4:
            break
        after = unscheduled_cursor(page[-1])
    assert [r.key for r in seen] == [r.key for r in records]
    assert _keys(store, before=1000.0) == []


def test_count_unscheduled_counts_the_records_without_a_reference_by_time(store: Store) -> None:
    assert store.count_unscheduled() == 0
    store.put_many([make_record(f"k{i}", updated_at=10.0 + i) for i in range(5)])
    store.put(make_record("scheduled", updated_at=50.0, ref=BrokerRef("s1", 1)))
    assert store.count_unscheduled() == 5
    assert store.count_unscheduled(since=12.0) == 3  # at or after
    assert store.count_unscheduled(since=100.0) == 0
    store.swap_reference("k4", None, CLAIM, now=60.0)
    store.delete("k3")
    assert (store.count_unscheduled(), store.count_unscheduled(since=12.0)) == (3, 1)
