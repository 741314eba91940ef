"""AsyncKQueue over every kind of store: Redis natively (redis.asyncio), SQL through a thread
hop, memory directly; the same write-ahead records and settles on each."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kqueue import Job, RetryPolicy
from kqueue.aio import AsyncKQueue
from kqueue.aio.stores import AsyncRedisStore, DirectStore, ThreadedStore
from kqueue.stores.base import Store
from kqueue.stores.memory import MemoryStore
from kqueue.stores.redis import RedisStore
from kqueue.stores.registry import open_store
from tests.servers import BeanstalkdProcess

pytestmark = pytest.mark.asyncio

ONCE = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0, jitter=False)


@pytest.fixture(params=["memory", "redis", "redis-sentinel", "redis-cluster", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisStore(url, prefix=request.getfixturevalue("redis_prefix"))
    if request.param.startswith("redis-"):  # the session's Sentinel set or cluster
        topology = request.getfixturevalue(request.param.replace("-", "_"))
        return RedisStore(topology.url(), prefix=f"kqtest:{uuid.uuid4().hex[:12]}:")
    return open_store(request.getfixturevalue(f"{request.param}_url"))


async def test_jobs_added_and_run_through_the_async_store(
    beanstalkd: BeanstalkdProcess, store: Store
) -> None:
    queue = AsyncKQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store, retry=ONCE)
    expected = {MemoryStore: DirectStore, RedisStore: AsyncRedisStore}.get(
        type(store), ThreadedStore
    )
    assert type(queue.async_store) is expected
    seen: list[int] = []

    async def fail_odd_once(job: Job) -> None:
        if job.data % 2 and job.attempts == 1:
            raise ValueError("odd")
        seen.append(job.data)

    queue.add_handler("n", fail_odd_once)
    # Given 20 jobs added at once, and one more beside them (a big payload: stored only)
    ids = await asyncio.gather(queue.add_jobs("n", range(20)), queue.add_job("n", 100))
    records = store.scan()
    assert len(records) == 21 and all(record.ref is not None for record in records)
    assert await queue.add_job("n", 1000 + len("x" * 5000)) > 0
    # When they run: the odd ones fail once and are recorded so, then succeed
    assert await queue.run_jobs(time_limit_ms=0, concurrency=8) == 22 + 10
    # Then every record is gone
    assert sorted(seen) == sorted([*range(20), 100, 6000])
    assert store.count() == 0 and len(ids[0]) == 20
    await queue.close()
    store.close()
