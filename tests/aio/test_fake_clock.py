"""The asyncio worker under pytest-asyncio with fakebeanstalk's FakeClock: delays and retry
backoff happen when the test moves the clock, with no waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import greenstalk
import pytest

from fakebeanstalk import FakeBeanstalkServer, FakeClock
from kqueue import Job, RetryPolicy
from kqueue.aio import AsyncKQueue
from kqueue.stores.memory import MemoryStore

pytestmark = pytest.mark.asyncio


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the loop run until ``condition()`` holds (AssertionError after ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


def waiting(server: FakeBeanstalkServer) -> int:
    with greenstalk.Client(server.address) as client:
        return int(client.stats()["current-waiting"])


async def test_a_delayed_job_runs_when_the_fake_clock_reaches_it(
    fakebeanstalk: FakeBeanstalkServer, fakebeanstalk_clock: FakeClock
) -> None:
    # Given an async worker waiting, and a job delayed by an hour
    queue = AsyncKQueue(host=fakebeanstalk.host, port=fakebeanstalk.port, bulk_store=MemoryStore())
    ran: list[int] = []

    async def record(job: Job) -> None:
        ran.append(job.data)

    queue.add_handler("later", record)
    await queue.add_job("later", 7, delay=3600)
    worker = asyncio.ensure_future(queue.run_jobs(count_limit=1, concurrency=5))
    await eventually(lambda: waiting(fakebeanstalk) == 1)
    assert ran == []
    # When the clock moves past the delay
    fakebeanstalk_clock.advance(3600)
    # Then the waiting worker gets the job at once and runs it
    assert await asyncio.wait_for(worker, 10) == 1
    assert ran == [7]
    await queue.close()


async def test_a_failed_job_runs_again_after_its_backoff_on_the_fake_clock(
    fakebeanstalk: FakeBeanstalkServer, fakebeanstalk_clock: FakeClock
) -> None:
    # Given a handler that fails once, with a 30 s backoff
    store = MemoryStore()
    retry = RetryPolicy(max_attempts=3, base_delay=30, max_delay=30, jitter=False)
    queue = AsyncKQueue(
        host=fakebeanstalk.host, port=fakebeanstalk.port, bulk_store=store, retry=retry
    )
    attempts: list[int] = []

    async def fail_once(job: Job) -> None:
        attempts.append(job.attempts)
        if job.attempts == 1:
            raise ConnectionError("mail server busy")

    queue.add_handler("mail", fail_once)
    await queue.add_job("mail", {"to": "b@example.com"})
    worker = asyncio.ensure_future(queue.run_jobs(count_limit=2, concurrency=5))
    # When the first attempt failed and the clock moves through the backoff
    await eventually(lambda: attempts == [1] and waiting(fakebeanstalk) == 1)
    fakebeanstalk_clock.advance(30)
    # Then the second attempt runs and the job is done
    assert await asyncio.wait_for(worker, 10) == 2
    assert attempts == [1, 2] and store.count() == 0
    await queue.close()
