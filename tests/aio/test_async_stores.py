"""AsyncKQueue over every kind of store: Redis natively (redis.asyncio), SQL through a thread
hop, memory directly; the same write-ahead records and settles on each."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from kqueue import Job, RetryPolicy
from kqueue.aio import AsyncKQueue
from kqueue.aio.stores import AsyncRedisStore, DirectStore, ThreadedStore
from kqueue.stores.base import BrokerRef, Store, new_record
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


async def test_the_async_store_keeps_the_index_recovery_reads(
    beanstalkd: BeanstalkdProcess, store: Store
) -> None:
    queue = AsyncKQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store)
    await queue.add_jobs("n", range(5))
    assert store.scan_unscheduled(before=time.time() + 60) == []  # every one scheduled
    # A record the async producer wrote but never put (it died, or beanstalkd was down)
    late = new_record("late", "n", b"1", "json", priority=1, delay=0, ttr=60, now=time.time())
    assert queue.async_store is not None
    await queue.async_store.put_many([late])
    assert store.scan_unscheduled(before=time.time() + 60) == [late]
    assert store.scan_unscheduled(before=late.updated_at) == []  # not past the grace yet
    await queue.async_store.swap_references([("late", None, BrokerRef("s1", 1))], now=time.time())
    assert store.scan_unscheduled(before=time.time() + 60) == []
    await queue.close()
