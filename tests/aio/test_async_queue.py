"""AsyncKQueue: the write-ahead order of add_job, and async handlers run many at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import greenstalk
import pytest
import pytest_asyncio

from kqueue import Job, RetryPolicy
from kqueue.aio import AsyncKQueue
from kqueue.errors import BrokerConnectionError, PayloadError, ValidationError
from kqueue.producer import NOT_SCHEDULED
from kqueue.stores.memory import MemoryStore
from tests.servers import BeanstalkdProcess, free_port, server_id

pytestmark = pytest.mark.asyncio

NO_WAIT = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=False)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest_asyncio.fixture
async def queue(beanstalkd: BeanstalkdProcess, store: MemoryStore) -> AsyncIterator[AsyncKQueue]:
    queue = AsyncKQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store, retry=NO_WAIT)
    yield queue
    await queue.close()


async def test_add_job_writes_the_record_before_the_reference(
    queue: AsyncKQueue, store: MemoryStore, client: greenstalk.Client[bytes]
) -> None:
    # When a job is added from a coroutine
    job_id = await queue.add_job("email", {"to": "a@example.com"})
    # Then its record is in the store, naming the beanstalkd job that carries it
    (record,) = store.scan()
    assert record.job_type == "email" and record.ref is not None
    assert record.ref.job_id == job_id
    assert record.ref.server_id == server_id(client.stats())
    assert client.stats_job(job_id)["tube"] == "kq-email"


async def test_concurrent_adds_of_many_types_go_to_their_own_tubes(
    queue: AsyncKQueue, client: greenstalk.Client[bytes]
) -> None:
    # When 300 coroutines add jobs of three types at once (one pipelined connection)
    ids = await asyncio.gather(*(queue.add_job(f"t{n % 3}", n) for n in range(300)))
    # Then every job is in its type's tube
    assert len(set(ids)) == 300
    for n, job_id in enumerate(ids):
        assert client.stats_job(job_id)["tube"] == f"kq-t{n % 3}"


async def test_bad_input_raises_and_writes_nothing(queue: AsyncKQueue, store: MemoryStore) -> None:
    with pytest.raises(ValidationError):
        await queue.add_job("bad name", 1)
    with pytest.raises(PayloadError):
        await queue.add_jobs("ok", [1, object()])
    with pytest.raises(ValidationError):
        await queue.add_job("ok", 1, priority=-1)
    assert store.count() == 0


async def test_broker_down_leaves_the_job_accepted_for_the_sweeper() -> None:
    # Given a queue whose beanstalkd is not there
    store = MemoryStore()
    queue = AsyncKQueue(port=free_port(), bulk_store=store, connect_timeout=0.5)
    try:
        # When a job is added
        job_id = await queue.add_job("later", {"n": 1})
        # Then it is accepted into the store, not yet scheduled
        assert job_id == NOT_SCHEDULED
        assert store.count() == 1
    finally:
        await queue.close()


async def test_strict_mode_raises_and_removes_the_record() -> None:
    store = MemoryStore()
    queue = AsyncKQueue(port=free_port(), bulk_store=store, strict=True, connect_timeout=0.5)
    try:
        with pytest.raises(BrokerConnectionError):
            await queue.add_job("later", 1)
        assert store.count() == 0
    finally:
        await queue.close()


async def test_async_handlers_run_concurrently_and_their_jobs_are_deleted(
    queue: AsyncKQueue, store: MemoryStore, client: greenstalk.Client[bytes]
) -> None:
    # Given 40 jobs whose handler waits until all 40 are running at once
    all_in = asyncio.Event()
    running = 0

    async def gather_all(job: Job) -> None:
        nonlocal running
        running += 1
        if running == 40:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 10)

    queue.add_handler("wide", gather_all)
    ids = await queue.add_jobs("wide", range(40))
    # When a worker runs them 40 at a time
    ran = await queue.run_jobs(count_limit=40, concurrency=40)
    # Then all ran at once (else the handlers would have timed out) and all are gone
    assert ran == 40 and all_in.is_set()
    assert store.count() == 0
    for job_id in ids:
        with pytest.raises(greenstalk.NotFoundError):
            client.stats_job(job_id)
    assert queue.counters["completed"] == 40


async def test_failing_async_handler_is_retried_then_buried(
    queue: AsyncKQueue, store: MemoryStore, client: greenstalk.Client[bytes]
) -> None:
    attempts: list[int] = []

    async def flaky(job: Job) -> None:
        attempts.append(job.attempts)
        raise RuntimeError("nope")

    queue.add_handler("f", flaky)
    job_id = await queue.add_job("f", 1)
    assert await queue.run_jobs(time_limit_ms=0, concurrency=4) == 3
    assert attempts == [1, 2, 3]
    assert client.stats_job(job_id)["state"] == "buried"
    (record,) = store.scan()
    assert record.state == "buried" and "nope" in (record.last_error or "")


async def test_sync_handlers_run_in_threads_on_the_async_worker(
    queue: AsyncKQueue, store: MemoryStore
) -> None:
    seen: list[int] = []
    queue.add_handler("plain", lambda job: seen.append(job.data))
    await queue.add_jobs("plain", [1, 2, 3])
    assert await queue.run_jobs(time_limit_ms=0, concurrency=3) == 3
    assert sorted(seen) == [1, 2, 3] and store.count() == 0


async def test_an_async_handler_past_its_ttr_is_cancelled_and_retried(
    queue: AsyncKQueue, client: greenstalk.Client[bytes]
) -> None:
    # Given a handler that outlives its 1 s TTR on the first attempt only
    attempts: list[int] = []

    async def slow_once(job: Job) -> None:
        attempts.append(job.attempts)
        if job.attempts == 1:
            await asyncio.sleep(30)

    queue.add_handler("slow", slow_once)
    job_id = await queue.add_job("slow", 1, ttr=1)
    # When it runs: the first attempt is cancelled before beanstalkd's TTR runs out
    assert await queue.run_jobs(count_limit=2, concurrency=2) == 2
    # Then the job was released and ran again, never twice at once
    assert attempts == [1, 2]
    with pytest.raises(greenstalk.NotFoundError):
        client.stats_job(job_id)


async def test_stop_lets_the_jobs_in_flight_finish(queue: AsyncKQueue, store: MemoryStore) -> None:
    # Given handlers that are running when stop() comes
    started = asyncio.Event()
    release = asyncio.Event()

    async def wait_for_release(job: Job) -> None:
        started.set()
        await release.wait()

    queue.add_handler("graceful", wait_for_release)
    await queue.add_jobs("graceful", range(5))
    worker = asyncio.ensure_future(queue.run_jobs(concurrency=5))
    await asyncio.wait_for(started.wait(), 10)
    # When stop() is called, then the handlers finish
    queue.stop()
    release.set()
    # Then run_jobs returns with every job settled
    assert await asyncio.wait_for(worker, 10) == 5
    assert store.count() == 0


async def test_a_cancelled_worker_hands_its_jobs_back(
    queue: AsyncKQueue, store: MemoryStore, client: greenstalk.Client[bytes]
) -> None:
    # Given handlers that never finish
    started = asyncio.Event()

    async def forever(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    queue.add_handler("stuck", forever)
    ids = await queue.add_jobs("stuck", range(3))
    worker = asyncio.ensure_future(queue.run_jobs(concurrency=3))
    await asyncio.wait_for(started.wait(), 10)
    # When the worker is cancelled (a forced stop)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    # Then every job is ready again for another worker, and its record is kept
    assert {client.stats_job(job_id)["state"] for job_id in ids} == {"ready"}
    assert store.count() == 3


async def test_the_sync_worker_runs_async_handlers_too(
    beanstalkd: BeanstalkdProcess, client: greenstalk.Client[bytes]
) -> None:
    # Given a plain KQueue with an async def handler (an AsyncKQueue's registry is a KQueue's)
    from kqueue import KQueue

    seen: list[int] = []

    async def remember(job: Job) -> None:
        await asyncio.sleep(0)
        seen.append(job.data)

    def run_on_the_sync_worker() -> int:
        with KQueue(host=beanstalkd.host, port=beanstalkd.port) as queue:
            queue.add_handler("a", remember)
            queue.add_jobs("a", [1, 2])
            return queue.run_jobs(time_limit_ms=0)

    # When the sync worker runs it (in a thread: it starts a loop of its own per job)
    assert await asyncio.to_thread(run_on_the_sync_worker) == 2
    # Then the coroutine ran to its end, not just got created
    assert seen == [1, 2]


async def test_a_job_whose_attempts_never_finished_is_buried_unrun(
    queue: AsyncKQueue,
    store: MemoryStore,
    client: greenstalk.Client[bytes],
    beanstalkd: BeanstalkdProcess,
) -> None:
    # Given a job reserved three times by workers that died holding it (budget: 3)
    ran: list[int] = []

    async def record(job: Job) -> None:
        ran.append(job.attempts)

    queue.add_handler("poison", record)
    job_id = await queue.add_job("poison", 1)
    for _ in range(3):
        with greenstalk.Client(beanstalkd.address, watch="kq-poison") as dying:
            assert dying.reserve(timeout=1).id == job_id
    # When the async worker gets it
    await queue.run_jobs(time_limit_ms=0, concurrency=2)
    # Then it is buried without running, its record says why
    assert ran == []
    assert client.stats_job(job_id)["state"] == "buried"
    (record_,) = store.scan()
    assert record_.state == "buried" and "never finished" in (record_.last_error or "")


async def test_an_auto_touched_async_handler_may_outlast_its_ttr(
    queue: AsyncKQueue, store: MemoryStore, client: greenstalk.Client[bytes]
) -> None:
    # Given a handler that runs past its job's 2 s TTR, registered with auto_touch
    attempts: list[int] = []

    async def long_one(job: Job) -> None:
        attempts.append(job.attempts)
        await asyncio.sleep(2.5)

    queue.add_handler("long", long_one, auto_touch=True)
    job_id = await queue.add_job("long", 1, ttr=2)
    # When it runs
    assert await queue.run_jobs(count_limit=1, concurrency=2) == 1
    # Then it ran once, to its end, and its job is done (the touches kept it reserved)
    assert attempts == [1] and store.count() == 0
    assert client.stats()["job-timeouts"] == 0
    with pytest.raises(greenstalk.NotFoundError):
        client.stats_job(job_id)


async def test_unique_keys_status_and_failures_by_key_from_asyncio(
    queue: AsyncKQueue, store: MemoryStore
) -> None:
    first = await queue.add_job("report", {"user": 1}, unique_key="report:1")
    again = await queue.add_job("report", {"user": 1}, unique_key="report:1")
    assert again == first > 0  # one job: the second add hands back the holder's id
    (record,) = store.scan()
    assert await queue.job_status(record.key) == "pending"
    assert await queue.job_failures(record.key) == []

    async def fails(job: Job) -> None:
        raise ValueError("no report today")

    queue.add_handler("report", fails, retry=RetryPolicy(max_attempts=1))
    assert await queue.run_jobs(time_limit_ms=0) == 1
    assert await queue.job_status(record.key) == "buried"
    (failure,) = await queue.job_failures(record.key)
    assert failure.error_type.endswith("ValueError") and failure.message == "no report today"


async def test_an_async_handlers_return_value_is_kept_as_its_result(
    queue: AsyncKQueue, store: MemoryStore
) -> None:
    async def total(job: Job) -> int:
        await asyncio.sleep(0)
        return sum(job.data)

    queue.add_handler("sum", total, keep_result=60)
    await queue.add_job("sum", [1, 2, 3])
    (record,) = store.scan()
    assert await queue.run_jobs(time_limit_ms=0) == 1
    assert await queue.job_status(record.key) == "done"
    assert await queue.job_result(record.key, timeout=5) == 6
