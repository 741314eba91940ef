"""Hooks around every job, and automatic touch for handlers that outlast their TTR."""

from __future__ import annotations

import time
from collections.abc import Callable

import greenstalk

from kqueue import Hooks, Job, KQueue, RetryPolicy


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
