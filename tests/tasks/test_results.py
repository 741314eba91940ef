"""Kept results and job status: what became of a job, by its handle or by its key."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import greenstalk
import pytest

from kqueue import (
    ConfigurationError,
    JobFailedError,
    JobNotFoundError,
    KQueue,
    ResultTimeoutError,
    RetryPolicy,
)
from kqueue.results import JOB_STATUSES
from kqueue.stores import Store
from tests.contract.conftest import open_test_store
from tests.servers import BeanstalkdProcess, wait_for

NO_BACKOFF = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0, jitter=False)


@pytest.fixture(params=["memory", "redis", "sqlite", "postgres", "mysql"])
def stored_queue(beanstalkd: BeanstalkdProcess, request: pytest.FixtureRequest) -> Iterator[KQueue]:
    """A queue on each store kind in turn."""
    store: Store = open_test_store(request.param, request)
    try:
        with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as queue:
            yield queue
    finally:
        store.close()


def test_a_kept_result_comes_back_through_the_handle_and_the_key(stored_queue: KQueue) -> None:
    queue = stored_queue

    @queue.task("report", keep_result=3600)
    def report(month: str) -> dict[str, object]:
        return {"month": month, "rows": [1, 2, 3]}

    handle = report.add(month="2026-11")
    assert handle.status() == "pending"
    with pytest.raises(ResultTimeoutError):
        handle.result(timeout=0.05)
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert handle.status() == "done"
    assert handle.result(timeout=0) == {"month": "2026-11", "rows": [1, 2, 3]}
    assert queue.job_status(handle.key) == "done"
    assert queue.job_result(handle.key, timeout=0) == {"month": "2026-11", "rows": [1, 2, 3]}
    assert report.handle(handle.key).result() == handle.result()


def test_result_waits_for_a_worker_in_another_thread(queue: KQueue) -> None:
    @queue.task("slow", keep_result=60)
    def slow(n: int) -> int:
        return n * n

    handle = slow.add(n=12)
    worker = threading.Thread(target=queue.run_jobs, kwargs={"count_limit": 1})
    worker.start()
    try:
        assert handle.result(timeout=30) == 144
    finally:
        worker.join(timeout=30)


def test_status_follows_a_job_through_running_to_done(queue: KQueue) -> None:
    seen: list[str] = []

    @queue.task("watched", keep_result=60)
    def watched() -> None:
        seen.append(handle.status())

    handle = watched.add()
    queue.run_jobs(time_limit_ms=0)
    assert seen == ["running"]
    assert handle.status() == "done"
    assert handle.result() is None


def test_a_buried_job_raises_its_last_failure_and_keeps_it_once_purged(queue: KQueue) -> None:
    @queue.task("flaky", keep_result=60, retry=NO_BACKOFF)
    def flaky(n: int) -> int:
        raise ValueError(f"bad n {n}")

    handle = flaky.add(n=7)
    queue.run_jobs(time_limit_ms=0)
    assert handle.status() == "buried"
    with pytest.raises(JobFailedError, match="bad n 7") as caught:
        handle.result(timeout=5)
    assert caught.value.error_type == "builtins.ValueError"
    assert "raise ValueError" in caught.value.traceback
    assert queue.purge_jobs("flaky") == 1
    assert handle.status() == "failed"  # the record is gone; the failure is kept
    with pytest.raises(JobFailedError, match="bad n 7"):
        handle.result()


def test_an_unknown_key_has_status_unknown_and_no_result(queue: KQueue) -> None:
    key = "0" * 32
    assert queue.job_status(key) == "unknown"
    with pytest.raises(JobNotFoundError, match="no kept result"):
        queue.job_result(key, timeout=1)


def test_a_result_that_cannot_be_kept_fails_the_job_at_once(queue: KQueue) -> None:
    @queue.task("opaque", keep_result=60)
    def opaque() -> object:
        return object()

    handle = opaque.add()
    queue.run_jobs(time_limit_ms=0)
    assert handle.status() == "buried"
    assert "cannot be kept" in handle.failures()[-1].message


def test_results_need_a_store_and_a_task_that_keeps_them(
    beanstalkd: BeanstalkdProcess, queue: KQueue
) -> None:
    with KQueue(host=beanstalkd.host, port=beanstalkd.port) as inline:
        with pytest.raises(ConfigurationError, match="bulk store"):

            @inline.task("x", keep_result=60)
            def kept() -> None: ...

        @inline.task("y")
        def plain() -> None: ...

        handle = plain.add()
        assert handle.status() == "pending"  # beanstalkd's view of the id
        inline.run_jobs(time_limit_ms=0)
        assert handle.status() == "unknown"

    @queue.task("z")
    def not_kept() -> None: ...

    with pytest.raises(ConfigurationError, match="keep_result"):
        not_kept.add().result()


def test_every_status_is_one_of_the_documented_ones() -> None:
    assert JOB_STATUSES == (
        "pending", "delayed", "running", "done", "failed", "buried", "unknown"
    )  # fmt: skip


def test_a_job_lost_by_the_broker_is_pending_until_swept_back(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    @queue.task("lost", keep_result=60)
    def lost() -> str:
        return "found"

    handle = lost.add()
    client.delete(handle.id)  # another client deletes it: beanstalkd lost it
    assert handle.status() == "pending"  # stored: the sweeper puts it back
    assert queue.sweep(verify=True).requeued == 1
    assert wait_for(lambda: queue.run_jobs(time_limit_ms=0) == 1, timeout=10)
    assert handle.result(timeout=0) == "found"
