"""The ack flusher: finished jobs are deleted while the next handler runs, and in batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import greenstalk

from kqueue import KQueue
from kqueue.job import Job
from kqueue.stores import Store
from tests.servers import wait_for


class CountingDeletes:
    """Wraps a store and counts its delete_many calls."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.delete_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delete_many(self, keys: Iterable[str]) -> int:
        self.delete_calls += 1
        return self.inner.delete_many(keys)


def _prime(queue: KQueue, job_type: str) -> None:
    """Let the window measure a pace: it holds one job until it has (the queues here are
    made with a window_target of 10 s, so that once primed a window takes many jobs)."""
    queue.add_job(job_type, "warm-up")
    assert queue.run_jobs(count_limit=1, time_limit_ms=0) == 1


def test_a_finished_job_is_deleted_while_a_slow_next_handler_outlasts_its_ttr(
    make_queue: Any, store: Store, client: greenstalk.Client[bytes]
) -> None:
    worker, other = make_queue(window_target=10.0), make_queue()
    ran: list[str] = []
    gone_during_sleep: list[bool] = []
    fast_id = 0
    rival = threading.Thread(target=lambda: other.run_jobs(time_limit_ms=2500))

    def handler(job: Job) -> None:
        ran.append(job.data)
        if job.data == "slow":
            rival.start()  # another worker, ready to take the fast job should its TTR run out
            time.sleep(0.3)
            try:
                client.stats_job(fast_id)
            except greenstalk.NotFoundError:
                gone_during_sleep.append(True)
            else:
                gone_during_sleep.append(False)
            time.sleep(1.5)  # well past the fast job's 1 s TTR

    worker.add_handler("ttr", handler)
    other.add_handler("ttr", handler)
    _prime(worker, "ttr")
    ran.clear()
    fast_id = worker.add_job("ttr", "fast", ttr=1)
    worker.add_job("ttr", "slow", ttr=10)
    # Both jobs in one window, the fast one first; then wait for any second delivery.
    assert worker.run_jobs(count_limit=3, time_limit_ms=2500) == 2
    rival.join()
    assert ran == ["fast", "slow"]
    assert gone_during_sleep == [True]
    assert store.count() == 0
    assert worker.counters["window_released"] == 0


def test_quick_jobs_are_deleted_in_batches(make_queue: Any, store: Store) -> None:
    counting = CountingDeletes(store)
    queue = make_queue(bulk_store=counting, window_target=10.0)
    queue.add_handler("quick", lambda job: None)
    _prime(queue, "quick")
    counting.delete_calls = 0
    queue.add_jobs("quick", list(range(200)))
    assert queue.run_jobs(count_limit=200, time_limit_ms=0) == 200
    assert 1 <= counting.delete_calls < 100
    assert store.count() == 0
    stats = queue.stats().server
    assert stats["current-jobs-ready"] == 0 and stats["current-jobs-reserved"] == 0


def test_the_flusher_thread_starts_with_the_first_job_and_stops_on_close(
    make_queue: Any,
) -> None:
    queue = make_queue()
    queue.add_handler("life", lambda job: None)
    assert not _flusher_threads()
    queue.add_job("life", 1)
    assert queue.run_jobs(count_limit=1, time_limit_ms=0) == 1
    assert len(_flusher_threads()) == 1
    queue.close()
    assert not _flusher_threads()
    queue.add_job("life", 2)  # a closed queue reconnects; so does its flusher
    assert queue.run_jobs(count_limit=1, time_limit_ms=0) == 1
    queue.close()
    assert not _flusher_threads()


def test_a_job_whose_connection_dropped_under_its_handler_runs_once(
    queue: KQueue, store: Store
) -> None:
    ran: list[int] = []

    def handler(job: Job) -> None:
        ran.append(job.data)
        if job.data == 0:
            assert job.connection is not None
            job.connection.close()  # the job goes back to ready; its delete reconnects

    queue.add_handler("lost", handler)
    queue.add_jobs("lost", [0, 1])
    assert queue.run_jobs(count_limit=2, time_limit_ms=2000) == 2
    assert ran == [0, 1]
    assert store.count() == 0


def _flusher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kqueue-acks" and t.is_alive()]


def test_the_last_finished_job_is_deleted_before_the_worker_blocks_in_reserve(
    make_queue: Any, store: Store, client: greenstalk.Client[bytes]
) -> None:
    queue = make_queue()
    queue.add_handler("last", lambda job: None)
    job_id = queue.add_job("last", "only")
    worker = threading.Thread(target=lambda: queue.run_jobs(time_limit_ms=1500))
    worker.start()
    try:
        assert wait_for(lambda: queue.counters["completed"] == 1, timeout=10)
        # The worker is now, or soon, blocked in reserve holding its connection.
        assert wait_for(lambda: client.stats()["current-waiting"] == 1, timeout=10)
        assert worker.is_alive()
        try:
            client.stats_job(job_id)
        except greenstalk.NotFoundError:
            deleted = True
        else:
            deleted = False
        assert deleted, "the finished job waited behind the blocking reserve"
        assert store.count() == 0
    finally:
        queue.stop()
        worker.join()
