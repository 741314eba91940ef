"""A store outage while a window is reserved: the jobs go back released, so the outage does
not use up their retry budgets (beanstalkd counts a reserve that ends in neither a release
nor a bury as an attempt that never finished, which buries a job after its budget)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import greenstalk
import pytest

from kqueue import KQueue
from kqueue.aio import AsyncKQueue
from kqueue.stores.redis import RedisStore
from tests.redis_servers import RedisProcess, require_redis_binaries
from tests.servers import BeanstalkdProcess


@pytest.fixture
def lone_redis() -> Iterator[RedisProcess]:
    """A redis-server of the test's own, which the test may kill."""
    server, _cli = require_redis_binaries()
    with tempfile.TemporaryDirectory(prefix="kq-redis-") as workdir:
        process = RedisProcess(server, Path(workdir), [])
        process.start()
        try:
            yield process
        finally:
            process.stop()


def _add_one_then_kill(beanstalkd: BeanstalkdProcess, redis: RedisProcess) -> int:
    store = RedisStore(f"redis://127.0.0.1:{redis.port}/0", connect_timeout=0.2)
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as queue:
        job_id = queue.add_job("outage", {"n": 1})
    store.close()
    redis.kill()
    return job_id


def _worker_store(redis: RedisProcess) -> RedisStore:
    return RedisStore(f"redis://127.0.0.1:{redis.port}/0", connect_timeout=0.2)


@pytest.mark.parametrize("beanstalkd", ["real"], indirect=True)
def test_a_worker_releases_what_it_reserved_when_the_store_is_down(
    beanstalkd: BeanstalkdProcess, lone_redis: RedisProcess, client: greenstalk.Client[bytes]
) -> None:
    job_id = _add_one_then_kill(beanstalkd, lone_redis)
    store = _worker_store(lone_redis)
    with KQueue(
        host=beanstalkd.host, port=beanstalkd.port, bulk_store=store, reconnect_delay=(0.01, 0.02)
    ) as queue:
        queue.add_handler("outage", lambda job: None)
        queue.run_jobs(time_limit_ms=500)
    store.close()
    stats = client.stats_job(job_id)
    assert stats["reserves"] >= 3  # tried again and again during the outage
    assert stats["releases"] == stats["reserves"]  # each one released: no attempt used up
    assert stats["state"] == "ready"


@pytest.mark.parametrize("beanstalkd", ["real"], indirect=True)
def test_an_async_worker_releases_what_it_reserved_when_the_store_is_down(
    beanstalkd: BeanstalkdProcess, lone_redis: RedisProcess, client: greenstalk.Client[bytes]
) -> None:
    job_id = _add_one_then_kill(beanstalkd, lone_redis)
    store = _worker_store(lone_redis)
    queue = AsyncKQueue(
        host=beanstalkd.host, port=beanstalkd.port, bulk_store=store, reconnect_delay=(0.01, 0.02)
    )

    async def handle(job: object) -> None:
        return None

    async def run() -> None:
        queue.add_handler("outage", handle)
        await queue.run_jobs(time_limit_ms=500)
        await queue.close()

    asyncio.run(run())
    store.close()
    stats = client.stats_job(job_id)
    assert stats["reserves"] >= 3
    assert stats["releases"] == stats["reserves"]
    assert stats["state"] == "ready"
