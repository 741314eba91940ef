"""The chaos scenarios again, on fakebeanstalk: fast, deterministic, and ready to copy.

Application authors can lift these into their own suites: the ``fakebeanstalk`` fixture comes
with kqueue (a pytest plugin), ``fakebeanstalk_clock`` makes its time move only on
``advance()``, and ``crash()`` / ``restart()`` do to the broker what kill -9 does to a real one.
A real application passes its own store (Redis, PostgreSQL, SQLite); the memory store keeps
these examples self-contained.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import greenstalk
import pytest

from fakebeanstalk import FakeBeanstalkServer, FakeClock
from kqueue import Job, KQueue
from kqueue.stores import JobRecord, MemoryStore, Store

pytestmark = pytest.mark.chaos


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def queue(fakebeanstalk: FakeBeanstalkServer, store: MemoryStore) -> Iterator[KQueue]:
    with KQueue(host=fakebeanstalk.host, port=fakebeanstalk.port, bulk_store=store) as q:
        yield q


def collect(queue: KQueue, job_type: str) -> list[Job]:
    """Register a handler that keeps every job it runs."""
    ran: list[Job] = []
    queue.add_handler(job_type, ran.append)
    return ran


def test_jobs_survive_a_broker_crash_without_binlog(
    fakebeanstalk: FakeBeanstalkServer, queue: KQueue, store: MemoryStore
) -> None:
    ran = collect(queue, "email")
    for i in range(50):
        queue.add_job("email", i)
    assert queue.run_jobs(count_limit=20, time_limit_ms=0) == 20

    fakebeanstalk.crash()  # every waiting job is gone from the broker...
    fakebeanstalk.restart()  # ...which comes back empty, ids from 1 again

    report = queue.sweep(grace=0)
    assert report.requeued == 30
    assert queue.run_jobs(time_limit_ms=0) == 30
    assert sorted(job.data for job in ran) == list(range(50))
    assert store.count() == 0


def test_restart_that_kept_its_jobs_is_not_duplicated_by_the_sweeper(
    fakebeanstalk: FakeBeanstalkServer, queue: KQueue
) -> None:
    ran = collect(queue, "email")
    for i in range(20):
        queue.add_job("email", i)
    fakebeanstalk.restart(keep_jobs=True)  # like a binlog restart: new server id, same jobs
    report = queue.sweep(grace=0)
    assert (report.requeued, report.live, report.references_updated) == (0, 20, 20)
    assert queue.run_jobs(time_limit_ms=0) == 20
    assert len(ran) == 20


def test_job_of_a_hung_worker_runs_again_once_its_ttr_passes(
    fakebeanstalk: FakeBeanstalkServer, fakebeanstalk_clock: FakeClock, queue: KQueue
) -> None:
    ran = collect(queue, "report")
    queue.add_job("report", "quarterly", ttr=30)
    with greenstalk.Client(fakebeanstalk.address, watch="kq-report") as hung:
        hung.reserve(timeout=0)  # takes the job, then never answers again
        assert queue.run_jobs(time_limit_ms=0) == 0
        fakebeanstalk_clock.advance(31)  # no sleeping: the TTR runs out now
        assert queue.run_jobs(time_limit_ms=0) == 1
    assert [job.data for job in ran] == ["quarterly"]


def test_job_of_a_worker_whose_connection_drops_runs_again_at_once(
    fakebeanstalk: FakeBeanstalkServer, queue: KQueue
) -> None:
    ran = collect(queue, "report")
    queue.add_job("report", "now", ttr=3600)
    dying = greenstalk.Client(fakebeanstalk.address, watch="kq-report")
    dying.reserve(timeout=0)
    dying.close()  # the worker process died: its connection closed
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert [job.data for job in ran] == ["now"]


class SimulatedCrash(BaseException):
    """Stands for the producer process dying at one exact point."""


class DiesAfterTheWrite:
    """Wraps a store: its producer dies right after each durable write, before the put."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_many(self, records: Sequence[JobRecord]) -> None:
        self.inner.put_many(records)
        raise SimulatedCrash


def test_job_of_a_producer_that_died_after_the_store_write_is_delivered(
    queue: KQueue, store: MemoryStore
) -> None:
    ran = collect(queue, "email")
    producer = KQueue(host=queue.host, port=queue.port, bulk_store=DiesAfterTheWrite(store))
    with pytest.raises(SimulatedCrash):
        producer.add_job("email", "written, never put")
    producer.close()
    assert store.count() == 1
    assert queue.run_jobs(time_limit_ms=0) == 0  # beanstalkd never saw it
    assert queue.sweep(grace=0).requeued_unscheduled == 1
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert [job.data for job in ran] == ["written, never put"]


def test_postdated_job_runs_when_the_clock_gets_there(
    fakebeanstalk_clock: FakeClock, queue: KQueue
) -> None:
    ran = collect(queue, "reminder")
    queue.add_job("reminder", "in an hour", delay=3600)
    fakebeanstalk_clock.advance(3599)
    assert queue.run_jobs(time_limit_ms=0) == 0
    fakebeanstalk_clock.advance(1)
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert [job.data for job in ran] == ["in an hour"]
