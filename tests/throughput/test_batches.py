"""add_jobs, the worker's window and inline copies, over every store on a real beanstalkd."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import greenstalk
import pytest

from kqueue import KQueue, PayloadError, ValidationError
from kqueue.job import Job
from kqueue.stores import Store
from kqueue.stores.base import BrokerRef, JobRecord, RecordStatus, read_checked


def test_add_jobs_enqueues_every_payload_and_runs_each_once(queue: KQueue, store: Store) -> None:
    ran: list[Any] = []
    ids = queue.add_jobs("batch", [{"n": n} for n in range(2500)] + [b"raw"])
    assert len(ids) == 2501 and len(set(ids)) == 2501 and 0 not in ids
    queue.add_handler("batch", lambda job: ran.append(job.data))
    assert queue.run_jobs(count_limit=2501, time_limit_ms=0) == 2501
    assert ran == [{"n": n} for n in range(2500)] + [b"raw"]
    assert store.count() == 0


def test_add_jobs_records_every_broker_reference(queue: KQueue, store: Store) -> None:
    ids = queue.add_jobs("refs", ["a", "b"])
    records = store.scan()
    assert sorted(r.ref.job_id for r in records if r.ref is not None) == sorted(ids)


def test_add_jobs_with_one_bad_payload_writes_and_enqueues_nothing(
    queue: KQueue, store: Store, client: greenstalk.Client[bytes]
) -> None:
    with pytest.raises(PayloadError, match="payload 2"):
        queue.add_jobs("bad", [1, 2, {"not json": object()}, 4])
    assert store.count() == 0
    assert "kq-bad" not in client.tubes()


@pytest.mark.parametrize("payloads", ["abc", b"abc", {"a": 1}, 5])
def test_add_jobs_refuses_a_single_payload_instead_of_a_list(
    queue: KQueue, store: Store, payloads: Any
) -> None:
    with pytest.raises(ValidationError):
        queue.add_jobs("bad", payloads)
    assert store.count() == 0


def test_a_small_payload_travels_inline_but_a_gone_record_never_runs(
    queue: KQueue, store: Store, client: greenstalk.Client[bytes]
) -> None:
    ran: list[Job] = []
    job_id = queue.add_job("copy", {"small": True})
    client.use("kq-copy")
    assert client.peek(job_id).body.startswith(b"kq1 s ")
    (record,) = store.scan()
    store.delete(record.key)  # completed or purged elsewhere
    queue.add_handler("copy", ran.append)
    assert queue.run_jobs(time_limit_ms=0) == 0
    assert ran == []
    assert queue.counters["stale_dropped"] == 1
    with pytest.raises(greenstalk.NotFoundError):
        client.peek(job_id)


def test_a_large_payload_still_travels_as_a_reference(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    job_id = queue.add_job("big", "x" * 5000)
    client.use("kq-big")
    assert client.peek(job_id).body.startswith(b"kq1 r ")
    ran: list[Any] = []
    queue.add_handler("big", lambda job: ran.append(job.data))
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert ran == ["x" * 5000]


class CountingStore:
    """Wraps a store and counts the batched reads a worker makes."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        self.reads += 1
        return self.inner.get_many(keys)

    def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        self.reads += 1
        return self.inner.get_status_many(keys)

    def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        self.reads += 1
        return read_checked(self.inner, expected)


def test_a_window_of_ready_jobs_reads_the_store_once(make_queue: Any, store: Store) -> None:
    producer = make_queue()
    counting = CountingStore(store)
    # The window starts at one job until it has measured a pace: measure one, and let the
    # window hold up to 10 s of work so that the 50 jobs fit in one.
    worker = make_queue(bulk_store=counting, window_target=10.0)
    worker.add_handler("win", lambda job: None)
    producer.add_job("win", "warm-up")
    assert worker.run_jobs(count_limit=1, time_limit_ms=0) == 1
    counting.reads = 0
    producer.add_jobs("win", list(range(50)))
    assert worker.run_jobs(count_limit=50, time_limit_ms=0) == 50
    assert counting.reads == 1


def test_the_window_holds_one_job_until_it_has_measured_a_pace() -> None:
    from kqueue.window import ReserveWindow

    window = ReserveWindow(128)
    assert window.size() == 1  # a slow first job must not hoard the queue from other workers
    window.observe(10, 0.001)  # fast handlers: 0.1 ms a job
    assert window.size() == 128
    window.observe(1, 5.0)  # then a slow one: the window shrinks again
    assert window.size() < 10


def test_a_lone_job_is_reserved_alone_and_runs(make_queue: Any) -> None:
    queue = make_queue()
    queue.add_handler("lone", lambda job: None)
    queue.add_job("lone", 1)
    assert queue.run_jobs(count_limit=5, time_limit_ms=0) == 1
    assert queue.counters["window_released"] == 0


def test_jobs_not_started_within_half_their_ttr_are_handed_back(make_queue: Any) -> None:
    # A generous window target lets one window take all three once the window has learnt a
    # pace (on a slow store the 20 ms default may allow only one at a time).
    queue = make_queue(window_target=10.0)
    ran: list[int] = []

    def slow_first(job: Job) -> None:
        ran.append(job.data)
        if job.data == 0:
            time.sleep(0.6)  # past half of the 1 s TTR of the jobs waiting behind it

    queue.add_handler("ttr", slow_first)
    # Fast ones first: the window learns a pace.
    queue.add_jobs("ttr", [10, 11, 12], ttr=1)
    assert queue.run_jobs(count_limit=3, time_limit_ms=0) == 3
    ran.clear()
    queue.add_jobs("ttr", [0, 1, 2], ttr=1)
    assert queue.run_jobs(count_limit=3, time_limit_ms=5000) == 3
    assert sorted(ran) == [0, 1, 2]  # each ran exactly once
    assert queue.counters["window_released"] >= 1


def test_add_jobs_without_a_store_puts_inline_bodies(
    beanstalkd: Any,
) -> None:
    with KQueue(host=beanstalkd.host, port=beanstalkd.port) as queue:
        ran: list[Any] = []
        assert len(queue.add_jobs("inline", ["a", "b", "c"])) == 3
        queue.add_handler("inline", lambda job: ran.append(job.data))
        assert queue.run_jobs(count_limit=3, time_limit_ms=0) == 3
        assert ran == ["a", "b", "c"]
