"""The async worker reads a copy's record checked against the job it holds, on every async
store: the record's status when it names that job, else the whole record (one script call
on Redis), so a job put before its reference swap runs the record's payload."""

from __future__ import annotations

import json
import time
import uuid

import greenstalk
import pytest

from kqueue import Job
from kqueue.aio import AsyncKQueue
from kqueue.keys import new_key
from kqueue.serialization import encode_body
from kqueue.stores.base import BrokerRef, JobRecord, RecordStatus, Store, new_record
from kqueue.stores.memory import MemoryStore
from kqueue.stores.redis import RedisStore
from kqueue.stores.registry import open_store
from tests.servers import BeanstalkdProcess

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["memory", "redis", "sqlite"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisStore(url, prefix=f"kqtest:{uuid.uuid4().hex[:12]}:")
    return open_store(request.getfixturevalue(f"{request.param}_url"))


async def test_the_async_store_answers_a_status_or_the_whole_record(
    beanstalkd: BeanstalkdProcess, store: Store
) -> None:
    # Given a record naming job 7 and one naming no job yet
    mine = BrokerRef("a1b2c3d4e5f60718", 7)
    now = time.time()
    named = new_record("k1", "mail", b"1", "json", priority=1, delay=0, ttr=30, now=now)
    store.put_many(
        [named, new_record("k2", "mail", b"2", "json", priority=1, delay=0, ttr=30, now=now)]
    )
    store.swap_references([("k1", None, mine)], now=now)
    queue = AsyncKQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store)
    # When both are read checked against job 7, and a key that does not exist
    assert queue.async_store is not None
    found = await queue.async_store.get_checked_many([("k1", mine), ("k2", mine), ("k3", mine)])
    # Then k1 is a status, k2 comes whole, k3 not at all
    assert isinstance(found["k1"], RecordStatus) and found["k1"].ref == mine
    assert isinstance(found["k2"], JobRecord) and found["k2"].payload == b"2"
    assert set(found) == {"k1", "k2"}
    await queue.close()


async def test_a_copy_put_before_its_reference_swap_runs_on_the_async_worker(
    beanstalkd: BeanstalkdProcess, store: Store
) -> None:
    # Given a job whose body was put before the producer swapped its reference in
    key, data = new_key(), json.dumps({"to": "alice"}).encode()
    store.put(new_record(key, "mail", data, "json", priority=1, delay=0, ttr=30, now=time.time()))
    with greenstalk.Client(beanstalkd.address, use="kq-mail") as client:
        body = encode_body("s", key=key, codec="json", priority=1, ttr=30, job_type="mail")
        client.put(body + data)  # type: ignore[arg-type]  # greenstalk sends bytes as they are
    queue = AsyncKQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store)
    ran: list[object] = []

    async def handler(job: Job) -> None:
        ran.append(job.data)

    queue.add_handler("mail", handler)
    # When the async worker runs it
    assert await queue.run_jobs(time_limit_ms=0, concurrency=2) == 1
    # Then it ran once with the record's payload, and its record is gone
    assert ran == [{"to": "alice"}]
    assert store.get(key) is None
    await queue.close()
