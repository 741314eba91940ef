"""Middleware around every job: hooks, retries (Fail, retry_when), skips, automatic touch, and
the age and time limits of docs/middleware.md, run as written there."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import greenstalk

from kqueue import Fail, Failure, Hooks, Job, KQueue, Middleware, RetryPolicy, SkipJob
from kqueue.stores import MemoryStore

DOCS = Path(__file__).resolve().parents[2] / "docs" / "middleware.md"


class Recorder(Hooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def before_job(self, job: Job) -> None:
        self.events.append(("before", job.data))

    def after_job(self, job: Job, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("after", job.data))

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        self.events.append(("failure", f"{job.data}:{error}:{job.outcome}"))


class Broken(Hooks):
    def before_job(self, job: Job) -> None:
        raise RuntimeError("hook bug")


def test_hooks_see_every_job_and_its_outcome(make_queue: Callable[..., KQueue]) -> None:
    recorder = Recorder()
    queue = make_queue(hooks=[recorder], retry=RetryPolicy(max_attempts=1))

    def handler(job: Job) -> None:
        if job.data == "bad":
            raise ValueError("nope")

    queue.add_handler("h", handler)
    queue.add_job("h", "good")
    queue.add_job("h", "bad")
    assert queue.run_jobs(time_limit_ms=0) == 2
    assert recorder.events == [
        ("before", "good"),
        ("after", "good"),
        ("before", "bad"),
        ("failure", "bad:nope:buried"),
    ]


def test_a_hook_that_raises_changes_no_outcome(make_queue: Callable[..., KQueue]) -> None:
    queue = make_queue(hooks=[Broken()])
    ran: list[object] = []
    queue.add_handler("h", lambda job: ran.append(job.data))
    queue.add_job("h", 1)
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert ran == [1]
    assert queue.counters["completed"] == 1


def test_auto_touch_keeps_a_long_handler_from_losing_its_job(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    seen: list[dict[str, object]] = []

    def long_handler(job: Job) -> None:
        time.sleep(2.5)  # longer than the 2 s TTR
        seen.append(dict(client.stats_job(job.id)))

    queue.add_handler("long", long_handler, auto_touch=True)
    queue.add_job("long", 1, ttr=2)
    assert queue.run_jobs(count_limit=1, time_limit_ms=0) == 1
    (stats,) = seen
    assert (stats["state"], stats["timeouts"]) == ("reserved", 0)
    assert queue.counters["completed"] == 1


class EventLog(Middleware):
    """Every event of every job, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def after_enqueue(self, job_type: str, count: int, unscheduled: int) -> None:
        self.events.append(f"enqueued {job_type} {count} {unscheduled}")

    def before_job(self, job: Job) -> None:
        self.events.append(f"before {job.data}")

    def after_handler(self, job: Job, error: BaseException | None) -> None:
        self.events.append(f"handler {job.data} {type(error).__name__}")

    def decide_failure(self, failure: Failure) -> None:
        self.events.append(f"decide {failure.job.data} bury={failure.bury}")

    def after_job(self, job: Job, seconds: float) -> None:
        self.events.append(f"after {job.data} {job.outcome}")

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        self.events.append(f"failure {job.data} {job.outcome}")

    def on_retried(self, job: Job, delay: int) -> None:
        self.events.append(f"retried {job.data} {delay}")

    def on_buried(self, job: Job, reason: str) -> None:
        self.events.append(f"buried {job.data}")


def test_middleware_sees_each_event_of_a_job_in_order(make_queue: Callable[..., KQueue]) -> None:
    log = EventLog()
    queue = make_queue(middleware=[log], retry=RetryPolicy(max_attempts=2, base_delay=0))

    def handler(job: Job) -> None:
        if job.data == "bad":
            raise ValueError("nope")

    queue.add_handler("m", handler)
    queue.add_jobs("m", ["good", "bad"])
    assert queue.run_jobs(count_limit=3, time_limit_ms=3000) == 3
    assert log.events == [
        "enqueued m 2 0",
        "before good",
        "handler good NoneType",
        "after good deleted",
        "before bad",
        "handler bad ValueError",
        # Retries runs before the queue's own middleware list: it decided already.
        "decide bad bury=False",
        "retried bad 0",
        "failure bad released",
        "before bad",
        "handler bad ValueError",
        "decide bad bury=True",
        "buried bad",
        "failure bad buried",
    ]


def test_a_handler_raising_fail_is_buried_at_once_with_its_reason(
    make_queue: Callable[..., KQueue],
) -> None:
    store = MemoryStore()
    queue = make_queue(bulk_store=store, retry=RetryPolicy(max_attempts=5))
    queue.add_handler("f", lambda job: (_ for _ in ()).throw(Fail("invoice is void")))
    job_id = queue.add_job("f", {"n": 1})
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert queue.job_stats(job_id)["state"] == "buried"
    [record] = store.scan()
    assert (record.state, record.attempts) == ("buried", 1)
    assert record.last_error == "Fail: invoice is void"
    assert queue.counters["retried"] == 0 and queue.counters["buried"] == 1


def test_retry_when_buries_what_it_refuses_and_retries_what_it_accepts(
    make_queue: Callable[..., KQueue],
) -> None:
    only_io = RetryPolicy(max_attempts=3, base_delay=0, retry_when=lambda e: isinstance(e, OSError))
    queue = make_queue(retry=only_io)
    failures = {"io": OSError("disk"), "bug": KeyError("x")}
    seen: list[str] = []

    def handler(job: Job) -> None:
        seen.append(job.data)
        raise failures[job.data]

    queue.add_handler("r", handler)
    io_id, bug_id = queue.add_jobs("r", ["io", "bug"])
    queue.run_jobs(count_limit=4, time_limit_ms=3000)
    assert seen.count("bug") == 1  # refused by retry_when: buried after one attempt
    assert seen.count("io") == 3  # retried until its budget
    assert queue.job_stats(bug_id)["state"] == "buried"
    assert queue.job_stats(io_id)["state"] == "buried"


class SkipOdd(Middleware):
    def before_job(self, job: Job) -> None:
        if job.data % 2:
            raise SkipJob("odd jobs are not wanted")


def test_skipjob_deletes_the_job_without_running_its_handler(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    store = MemoryStore()
    queue = make_queue(bulk_store=store, middleware=[SkipOdd()])
    ran: list[int] = []
    queue.add_handler("s", lambda job: ran.append(job.data))
    queue.add_jobs("s", [1, 2, 3])
    queue.run_jobs(time_limit_ms=0)
    assert ran == [2]
    assert queue.counters["skipped"] == 2
    assert store.count() == 0
    assert client.stats_tube("kq-s")["current-jobs-ready"] == 0


def _docs_examples() -> dict[str, Any]:
    """The Python blocks of docs/middleware.md, run as written, in one namespace."""
    namespace: dict[str, Any] = {}
    for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL):
        exec(compile(block, str(DOCS), "exec"), namespace)
    return namespace


def test_the_age_limit_of_the_docs_buries_jobs_older_than_the_limit(
    make_queue: Callable[..., KQueue],
) -> None:
    examples = _docs_examples()
    late = examples["AgeLimit"](max_age=60, clock=lambda: time.time() + 3600)
    queue = make_queue(middleware=[late])
    ran: list[object] = []
    queue.add_handler("a", ran.append)
    job_id = queue.add_job("a", "stale")
    queue.run_jobs(time_limit_ms=0)
    assert ran == []
    assert queue.job_stats(job_id)["state"] == "buried"
    fresh = make_queue(middleware=[examples["AgeLimit"](max_age=60)])
    fresh.add_handler("a", ran.append)
    fresh.add_job("a", "fresh")
    fresh.run_jobs(time_limit_ms=0)
    assert len(ran) == 1


def test_the_time_limit_of_the_docs_interrupts_a_handler_that_runs_too_long(
    make_queue: Callable[..., KQueue],
) -> None:
    examples = _docs_examples()
    queue = make_queue(middleware=[examples["TimeLimit"](0.2)], retry=RetryPolicy(max_attempts=1))
    finished: list[object] = []

    def slow(job: Job) -> None:
        time.sleep(30)
        finished.append(job.data)

    queue.add_handler("t", slow)
    job_id = queue.add_job("t", "slow")
    started = time.monotonic()
    queue.run_jobs(time_limit_ms=0)
    assert finished == []
    assert time.monotonic() - started < 25  # interrupted, not slept out (bound: never flaky)
    assert queue.job_stats(job_id)["state"] == "buried"
    assert queue.counters["failed"] == 1
