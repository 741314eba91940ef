"""Failure history: every failed attempt is kept on the job's record (time, worker,
exception type, message, the end of its traceback), the newest ten, across recovery."""

from __future__ import annotations

import os
import socket

import greenstalk

from kqueue import Fail, Job, KQueue, RetryPolicy
from kqueue.stores.base import MAX_FAILURES


def test_each_failed_attempt_is_kept_with_its_worker_and_traceback(queue: KQueue) -> None:
    def flaky(job: Job) -> None:
        if job.attempts < 3:
            raise ConnectionError(f"upstream down on attempt {job.attempts}")
        raise Fail("giving up")

    queue.add_handler("flaky", flaky)
    queue.add_job("flaky", {"n": 1})
    queue.run_jobs(time_limit_ms=0)
    assert queue.store is not None
    (record,) = queue.store.scan()
    history = queue.job_failures(record.key)
    assert [f.attempt for f in history] == [1, 2, 3]
    assert [f.error_type for f in history] == [
        "builtins.ConnectionError",
        "builtins.ConnectionError",
        "kqueue.middleware.base.Fail",
    ]
    assert history[0].message == "upstream down on attempt 1"
    assert {f.worker for f in history} == {f"{socket.gethostname()}:{os.getpid()}"}
    assert "in flaky" in history[0].traceback and "ConnectionError" in history[0].traceback
    assert history[0].at <= history[1].at <= history[2].at
    assert record.last_error == "Fail: giving up" and record.state == "buried"


def test_the_history_keeps_the_last_ten_attempts(queue: KQueue) -> None:
    def always(job: Job) -> None:
        raise ValueError(f"attempt {job.attempts}")

    many = RetryPolicy(max_attempts=14, base_delay=0, max_delay=0, jitter=False)
    queue.add_handler("always", always, retry=many)
    queue.add_job("always", None)
    assert queue.run_jobs(time_limit_ms=0) == 14
    assert queue.store is not None
    (record,) = queue.store.scan()
    history = queue.job_failures(record.key)
    assert len(history) == MAX_FAILURES
    assert [f.message for f in history] == [f"attempt {n}" for n in range(5, 15)]


def test_the_history_is_kept_across_recovery(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    failing = [True]

    def disk(job: Job) -> None:
        if failing[0]:
            raise OSError("disk full")

    queue.add_handler("disk", disk)
    job_id = queue.add_job("disk", {"file": "a"})
    assert queue.run_jobs(count_limit=1, time_limit_ms=0) == 1  # failed, released
    # beanstalkd loses the job (another client deletes it, as a broker restarted without its
    # binlog would); the sweeper puts the stored record back, history and all.
    client.delete(job_id)
    assert queue.sweep(verify=True).requeued == 1
    assert queue.store is not None
    (record,) = queue.store.scan()
    assert record.ref is not None and record.ref.job_id != job_id
    assert [f.message for f in queue.job_failures(record.key)] == ["disk full"]
    failing[0] = False
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert queue.store.count() == 0  # done: the record, and its history, are gone


def test_a_kicked_dead_letter_keeps_its_history(queue: KQueue) -> None:
    queue.add_handler("dead", lambda job: (_ for _ in ()).throw(Fail("no such user")))
    queue.add_job("dead", {"user": 7})
    queue.run_jobs(time_limit_ms=0)
    assert queue.kick_buried("dead") == 1
    assert queue.store is not None
    (record,) = queue.store.scan()
    assert (record.attempts, record.state) == (0, "enqueued")  # a fresh budget
    assert [f.message for f in queue.job_failures(record.key)] == ["no such user"]


def test_a_job_its_handler_buries_keeps_the_reason_in_its_history(queue: KQueue) -> None:
    def refuse(job: Job) -> None:
        queue.bury_job(job, reason="address on the block list")

    queue.add_handler("refuse", refuse)
    queue.add_job("refuse", {"to": "x"})
    queue.run_jobs(time_limit_ms=0)
    assert queue.store is not None
    (record,) = queue.store.scan()
    (failure,) = queue.job_failures(record.key)
    assert (failure.error_type, failure.message) == ("kqueue.Buried", "address on the block list")
    assert queue.job_status(record.key) == "buried"
