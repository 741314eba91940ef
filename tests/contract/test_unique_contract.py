"""The unique-key part of the store contract (Store.put_unique, Store.release_unique), checked
against every store kind alike, with threads and (for the stores several processes share)
processes racing for one key."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from typing import Any

import pytest

from kqueue.errors import StoreError
from kqueue.stores import Store
from kqueue.stores.base import UniqueClaim
from tests.contract.conftest import open_test_store
from tests.contract.records import make_record

FINISH = UniqueClaim("report:42")
START = UniqueClaim("report:42", "start")


def expiring(at: float) -> UniqueClaim:
    return UniqueClaim("report:42", "expiry", at)


def test_a_free_unique_key_is_taken_and_its_record_written(store: Store) -> None:
    assert store.put_unique([make_record("k1")], [FINISH], now=1.0) == [None]
    assert store.get("k1") == make_record("k1")


def test_a_held_key_names_its_holder_and_writes_nothing(store: Store) -> None:
    store.put_unique([make_record("k1")], [FINISH], now=1.0)
    assert store.put_unique([make_record("k2")], [FINISH], now=2.0) == ["k1"]
    assert store.get("k2") is None
    assert store.count() == 1


def test_a_key_held_until_finish_is_free_once_its_record_is_deleted(store: Store) -> None:
    store.put_unique([make_record("k1")], [FINISH], now=1.0)
    store.delete("k1")
    assert store.put_unique([make_record("k2")], [FINISH], now=2.0) == [None]
    assert store.put_unique([make_record("k3")], [FINISH], now=3.0) == ["k2"]


def test_a_key_held_until_start_is_free_once_released_by_its_own_record(store: Store) -> None:
    store.put_unique([make_record("k1", unique_until_start="report:42")], [START], now=1.0)
    assert store.release_unique([("report:42", "other")]) == 0
    assert store.put_unique([make_record("k2")], [START], now=2.0) == ["k1"]
    assert store.release_unique([("report:42", "k1")]) == 1
    assert store.release_unique([("report:42", "k1")]) == 0
    assert store.get("k1") is not None  # the job itself stays: it is running
    assert store.put_unique([make_record("k2")], [START], now=3.0) == [None]


def test_a_key_held_until_start_is_free_once_its_record_is_gone(store: Store) -> None:
    store.put_unique([make_record("k1")], [START], now=1.0)
    store.delete("k1")  # purged before any worker started it
    assert store.put_unique([make_record("k2")], [START], now=2.0) == [None]


def test_an_expiring_key_is_held_until_its_time_whatever_happens_to_the_job(store: Store) -> None:
    store.put_unique([make_record("k1")], [expiring(100.0)], now=1.0)
    store.delete("k1")  # done
    assert store.put_unique([make_record("k2")], [expiring(200.0)], now=99.0) == ["k1"]
    assert store.put_unique([make_record("k2")], [expiring(200.0)], now=100.0) == [None]
    assert store.put_unique([make_record("k3")], [FINISH], now=150.0) == ["k2"]


def test_a_batch_mixes_claims_and_plain_records(store: Store) -> None:
    store.put_unique([make_record("k0")], [UniqueClaim("b")], now=1.0)
    records = [make_record(f"k{i}") for i in range(1, 5)]
    claims = [UniqueClaim("a"), UniqueClaim("b"), None, UniqueClaim("c", "start")]
    assert store.put_unique(records, claims, now=2.0) == [None, "k0", None, None]
    assert sorted(r.key for r in store.scan()) == ["k0", "k1", "k3", "k4"]


def test_an_existing_record_key_writes_nothing_and_takes_no_key(store: Store) -> None:
    store.put(make_record("k1"))
    with pytest.raises(StoreError):
        store.put_unique([make_record("k0"), make_record("k1")], [None, FINISH], now=1.0)
    assert store.get("k0") is None
    assert store.put_unique([make_record("k2")], [FINISH], now=2.0) == [None]


def test_inconsistent_arguments_raise_and_write_nothing(store: Store) -> None:
    with pytest.raises(StoreError):
        store.put_unique([make_record("k1")], [], now=1.0)
    with pytest.raises(StoreError):
        store.put_unique([make_record("k1"), make_record("k2")], [FINISH, FINISH], now=1.0)
    with pytest.raises(StoreError):
        store.put_unique([make_record("k1")], [UniqueClaim("x", "expiry")], now=1.0)
    assert store.count() == 0
    assert store.put_unique([], [], now=1.0) == []


def test_the_unique_until_start_field_is_kept_by_every_read(store: Store) -> None:
    record = make_record("k1", unique_until_start="ünïque:☃")
    store.put_unique([record], [UniqueClaim("ünïque:☃", "start")], now=1.0)
    assert store.get("k1") == record
    assert store.get_many(["k1"]) == {"k1": record}
    assert store.scan() == [record]
    assert store.scan_referencing(None) == [record]


def _race(store: Store, claim: UniqueClaim, threads: int, now: float, tag: str) -> list[Any]:
    """``threads`` threads put a record claiming ``claim`` at the same moment."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads

    def put(index: int) -> None:
        try:
            barrier.wait(timeout=20)
            key = f"{tag}-{index:02d}"
            results[index] = (key, store.put_unique([make_record(key)], [claim], now=now)[0])
        except BaseException as exc:  # reported in the main thread
            results[index] = exc

    workers = [threading.Thread(target=put, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return results


def _one_winner(results: list[Any], store: Store) -> str:
    errors = [result for result in results if isinstance(result, BaseException)]
    assert errors == []
    winners: list[str] = [key for key, holder in results if holder is None]
    assert len(winners) == 1, results
    assert Counter(holder for _, holder in results if holder is not None) == Counter(
        {winners[0]: len(results) - 1}
    )
    assert store.get(winners[0]) is not None
    return winners[0]


@pytest.mark.parametrize("claim", [FINISH, START, expiring(50.0)], ids=lambda c: c.until)
def test_threads_adding_one_key_at_once_write_exactly_one_record(
    store: Store, claim: UniqueClaim
) -> None:
    first = _one_winner(_race(store, claim, 12, now=1.0, tag="a"), store)
    assert store.count() == 1
    # The key goes free (its job finished, was started, or its time passed): the race for
    # taking over the stale claim has one winner too.
    store.delete(first)
    store.release_unique([(claim.unique_key, first)])
    again = claim._replace(expires_at=120.0) if claim.expires_at is not None else claim
    _one_winner(_race(store, again, 12, now=60.0, tag="b"), store)
    assert store.count() == 1


SHARED_KINDS = ("redis", "sqlite", "postgres", "mysql")


def _process_put(spec: dict[str, str], key: str, barrier: Any, out: Any) -> None:
    """A process's part of the race: its own store, a record claiming the key at the signal."""
    from kqueue.stores.redis import RedisStore
    from kqueue.stores.sql import SQLStore

    store: Store
    if spec["kind"] == "redis":
        store = RedisStore(spec["url"], prefix=spec["prefix"])
    else:
        store = SQLStore(spec["url"])
    try:
        store.count()  # connected (and the schema there) before the start signal
        barrier.wait(timeout=60)
        out.put((key, store.put_unique([make_record(key)], [FINISH], now=1.0)[0]))
    except BaseException as exc:
        out.put((key, exc))
    finally:
        store.close()


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_processes_adding_one_key_at_once_write_exactly_one_record(
    kind: str, request: pytest.FixtureRequest
) -> None:
    spec = {"kind": kind}
    if kind == "redis":
        spec["url"] = request.getfixturevalue("redis_url")
        spec["prefix"] = request.getfixturevalue("redis_prefix")
    else:
        spec["url"] = request.getfixturevalue(f"{kind}_url")
    store = open_test_store(kind, request)
    try:
        store.count()  # the tables exist before the processes start
        results = _race_processes(spec, processes=6)
        _one_winner(results, store)
        assert store.count() == 1
    finally:
        store.close()


def _race_processes(spec: dict[str, str], processes: int) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=_process_put, args=(spec, f"p-{n}", barrier, out))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    results = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert [child.exitcode for child in children] == [0] * processes
    return results


def test_prune_deletes_only_claims_that_no_longer_hold_their_key(store: Store) -> None:
    records = [make_record(f"k{i}") for i in range(6)]
    claims = [
        UniqueClaim("a-done"),  # its job finishes below
        UniqueClaim("b-waiting"),
        UniqueClaim("c-started", "start"),  # released below
        UniqueClaim("d-expired", "expiry", 50.0),
        UniqueClaim("e-expiring", "expiry", 500.0),
        UniqueClaim("f-done-early", "expiry", 500.0),  # its job finishes: still held
    ]
    store.put_unique(records, claims, now=1.0)
    store.delete_many(["k0", "k5"])
    store.release_unique([("c-started", "k2")])
    assert store.prune_unique(now=100.0) == (2, None)  # a-done, d-expired
    assert store.prune_unique(now=100.0) == (0, None)
    assert store.put_unique([make_record("n1")], [UniqueClaim("b-waiting")], now=100.0) == ["k1"]
    assert store.put_unique([make_record("n2")], [UniqueClaim("f-done-early")], now=100.0) == ["k5"]
    assert store.put_unique([make_record("n3")], [UniqueClaim("a-done")], now=100.0) == [None]


def test_prune_pages_through_the_claims_in_key_order(store: Store) -> None:
    records = [make_record(f"k{i}") for i in range(5)]
    store.put_unique(records, [UniqueClaim(f"u{i}") for i in range(5)], now=1.0)
    store.delete_many(["k0", "k1", "k3"])
    assert store.prune_unique(now=2.0, limit=2) == (2, "u1")
    assert store.prune_unique(now=2.0, after="u1", limit=2) == (1, "u3")
    assert store.prune_unique(now=2.0, after="u3", limit=2) == (0, None)
    assert store.prune_unique(now=2.0) == (0, None)
    assert store.put_unique([make_record("n")], [UniqueClaim("u4")], now=3.0) == ["k4"]


def _race_with_prunes(store: Store, key: str, tag: str) -> list[Any]:
    """8 threads add a record claiming ``key`` while 2 prune, all at one moment."""
    barrier = threading.Barrier(10)
    results: list[Any] = []

    def add(index: int) -> None:
        try:
            barrier.wait(timeout=20)
            record_key = f"{tag}-{index}"
            holder = store.put_unique([make_record(record_key)], [UniqueClaim(key)], now=2.0)
            results.append((record_key, holder[0]))
        except BaseException as exc:  # reported in the main thread
            results.append(exc)

    def prune() -> None:
        try:
            barrier.wait(timeout=20)
            store.prune_unique(now=2.0)
        except BaseException as exc:  # reported in the main thread
            results.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=prune) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_adds_racing_prunes_for_a_stale_key_have_exactly_one_winner(store: Store) -> None:
    for round_number in range(3):
        key = f"stale{round_number}"
        store.put_unique([make_record(f"old{round_number}")], [UniqueClaim(key)], now=1.0)
        store.delete(f"old{round_number}")  # the claim no longer holds: adds and prunes race
        _one_winner(_race_with_prunes(store, key, f"r{round_number}"), store)
    assert store.count() == 3
