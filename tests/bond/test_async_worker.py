"""The asyncio worker over several beanstalkd servers: one reserve loop per server, sharing
the jobs in flight, ``concurrency`` and ``count_limit`` (see kqueue/aio/consumer.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from kqueue import KQueue
from kqueue.aio import AsyncKQueue
from kqueue.aio.worker import EXIT_OK, AsyncWorker
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.job import Job
from kqueue.stores import MemoryStore
from kqueue.stores.base import iter_records
from tests.bond.conftest import addresses, id_of, ready_on
from tests.bond.test_stray_copies import _copy_elsewhere
from tests.servers import BeanstalkdProcess

pytestmark = pytest.mark.asyncio

TUBE = "kq-mail"


def _tube_counts(broker: BeanstalkdProcess) -> tuple[int, int]:
    """(ready, reserved) jobs of the tube on one broker."""
    conn = BeanstalkConnection(broker.host, broker.port, command_timeout=5)
    try:
        stats = conn.stats_tube(TUBE)
        return (
            (0, 0)
            if stats is None
            else (stats["current-jobs-ready"], stats["current-jobs-reserved"])
        )
    finally:
        conn.close()


def _spread(trio: list[BeanstalkdProcess], store: MemoryStore | None, count: int) -> None:
    """Add ``count`` jobs one at a time (round robin: each server gets its share)."""
    with KQueue(servers=addresses(trio), bulk_store=store) as producer:
        for n in range(count):
            producer.add_job("mail", n)
    assert all(ready_on(broker, TUBE) > 0 for broker in trio)


async def test_jobs_on_three_servers_all_run_once_with_concurrency_4(
    trio: list[BeanstalkdProcess],
) -> None:
    store = MemoryStore()
    _spread(trio, store, 30)
    seen: list[int] = []

    async def handler(job: Job) -> None:
        await asyncio.sleep(0.001)
        seen.append(job.data)

    async with AsyncKQueue(servers=addresses(trio), bulk_store=store) as queue:
        queue.add_handler("mail", handler)
        assert await queue.run_jobs(time_limit_ms=0, concurrency=4) == 30
    assert sorted(seen) == list(range(30))
    assert list(iter_records(store)) == []
    assert [_tube_counts(broker) for broker in trio] == [(0, 0)] * 3


@pytest.mark.parametrize(("limit", "concurrency"), [(1, 1), (7, 4), (11, 20)])
async def test_count_limit_holds_exactly_across_servers(
    trio: list[BeanstalkdProcess], limit: int, concurrency: int
) -> None:
    store = MemoryStore()
    _spread(trio, store, 30)
    seen: list[int] = []

    async def handler(job: Job) -> None:
        await asyncio.sleep(0.005)
        seen.append(job.data)

    async with AsyncKQueue(servers=addresses(trio), bulk_store=store) as queue:
        queue.add_handler("mail", handler)
        ran = await queue.run_jobs(limit, 5000, concurrency=concurrency)
    assert ran == len(seen) == limit
    assert len(list(iter_records(store))) == 30 - limit
    counts = [_tube_counts(broker) for broker in trio]
    assert sum(ready for ready, _ in counts) == 30 - limit
    assert [reserved for _, reserved in counts] == [0, 0, 0]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_handlers_in_flight_never_exceed_concurrency(
    trio: list[BeanstalkdProcess], concurrency: int
) -> None:
    _spread(trio, None, 24)
    running, most = 0, 0

    async def handler(job: Job) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1

    async with AsyncKQueue(servers=addresses(trio)) as queue:
        queue.add_handler("mail", handler)
        assert await queue.run_jobs(time_limit_ms=0, concurrency=concurrency) == 24
    assert most == concurrency
    assert [_tube_counts(broker) for broker in trio] == [(0, 0)] * 3


async def test_a_waiting_worker_wakes_at_once_on_any_server(
    trio: list[BeanstalkdProcess],
) -> None:
    ran: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def handler(job: Job) -> None:
        ran.put_nowait((job.data, time.monotonic()))

    async with AsyncKQueue(servers=addresses(trio), heartbeat=30) as queue:
        queue.add_handler("mail", handler)
        run = asyncio.ensure_future(queue.run_jobs(3, 20_000, concurrency=2))
        await asyncio.sleep(0.3)  # every server's loop waits in a reserve
        for n, broker in enumerate(reversed(trio)):
            one = KQueue(host=broker.host, port=broker.port)
            added = time.monotonic()
            await asyncio.to_thread(one.add_job, "mail", n)
            one.close()
            data, at = await asyncio.wait_for(ran.get(), 5)
            assert data == n
            assert at - added < 1.0  # not after a 30 s heartbeat
        assert await asyncio.wait_for(run, 5) == 3


async def test_a_killed_server_does_not_stop_the_others(
    trio: list[BeanstalkdProcess],
) -> None:
    store = MemoryStore()
    _spread(trio, store, 60)
    victim = id_of(trio[1])
    on_others = {r.key for r in iter_records(store) if r.ref and r.ref.server_id != victim}
    done: set[str] = set()
    first = asyncio.Event()

    async def handler(job: Job) -> None:
        first.set()
        await asyncio.sleep(0.01)
        done.add(job.key)

    queue = AsyncKQueue(servers=addresses(trio), bulk_store=store, reconnect_delay=(0.05, 0.2))
    queue.add_handler("mail", handler)
    try:
        run = asyncio.ensure_future(queue.run_jobs(concurrency=2))
        await asyncio.wait_for(first.wait(), 5)
        await asyncio.to_thread(trio[1].kill)
        deadline = time.monotonic() + 10
        while not on_others <= done and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not run.done()  # the run went on, and does not fail
        queue.stop()
        ran = await asyncio.wait_for(run, 5)
    finally:
        await queue.close()
    assert on_others <= done
    assert len(on_others) <= ran <= len(done)  # a victim's job may have lost its delete
    left = {r.key for r in iter_records(store)}
    assert left.isdisjoint(done)  # the victim's jobs not run kept their records
    assert len(left) == 60 - len(done)


async def test_a_burst_run_leaves_a_dead_server_out(trio: list[BeanstalkdProcess]) -> None:
    store = MemoryStore()
    _spread(trio, store, 12)
    victim = id_of(trio[0])
    on_others = sorted(r.key for r in iter_records(store) if r.ref and r.ref.server_id != victim)
    trio[0].kill()
    seen: list[str] = []
    async with AsyncKQueue(servers=addresses(trio), bulk_store=store) as queue:
        queue.add_handler("mail", lambda job: seen.append(job.key))
        assert await asyncio.wait_for(queue.run_jobs(time_limit_ms=0, concurrency=2), 10) == 8
    assert sorted(seen) == on_others


async def test_stop_returns_at_once_and_leaves_no_job_reserved(
    trio: list[BeanstalkdProcess],
) -> None:
    _spread(trio, None, 12)
    started = asyncio.Event()

    async def handler(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.3)

    async with AsyncKQueue(servers=addresses(trio), heartbeat=30) as queue:
        queue.add_handler("mail", handler)
        # concurrency 1: the other servers' loops may each hold a job waiting for a place
        run = asyncio.ensure_future(queue.run_jobs(concurrency=1))
        await asyncio.wait_for(started.wait(), 5)
        stopped = time.monotonic()
        queue.stop()
        assert await asyncio.wait_for(run, 5) == 1
        assert time.monotonic() - stopped < 0.6  # the handler in flight, no more
        counts = [_tube_counts(broker) for broker in trio]
        assert sum(ready for ready, _ in counts) == 11
        assert [reserved for _, reserved in counts] == [0, 0, 0]
        # An idle worker (nothing ready, reserves waiting on every server) stops at once.
        queue.add_handler("other", handler)
        idle = asyncio.ensure_future(queue.run_jobs(job_types=["other"], concurrency=2))
        await asyncio.sleep(0.3)
        stopped = time.monotonic()
        queue.stop()
        assert await asyncio.wait_for(idle, 5) == 0
        assert time.monotonic() - stopped < 0.5


async def test_async_worker_runs_a_bonded_queue(trio: list[BeanstalkdProcess]) -> None:
    store = MemoryStore()
    _spread(trio, store, 9)
    queue = AsyncKQueue(servers=addresses(trio), bulk_store=store)
    seen: list[int] = []
    queue.add_handler("mail", lambda job: seen.append(job.data))
    worker = AsyncWorker(queue, concurrency=3, burst=True)
    assert await worker.serve() == EXIT_OK
    assert sorted(seen) == list(range(9))
    assert worker.jobs_run == 9
    assert list(iter_records(store)) == []


async def test_a_copy_on_another_live_server_is_dropped_unrun(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    make_bonded(bulk_store=store).add_job("mail", "hello")
    holder, other = _copy_elsewhere(trio, store)
    (record,) = list(iter_records(store))
    assert record.ref is not None
    elsewhere = BeanstalkConnection(trio[holder].host, trio[holder].port, command_timeout=5)
    assert elsewhere.reserve_job(record.ref.job_id) is not None  # the job itself, out of reach
    seen: list[str] = []
    async with AsyncKQueue(servers=addresses(trio), bulk_store=store) as queue:
        queue.add_handler("mail", lambda job: seen.append(job.data))
        assert await queue.run_jobs(time_limit_ms=500) == 0
        assert ready_on(trio[other], TUBE) == 0  # the copy was dropped
        elsewhere.close()  # the job goes back to ready, and runs
        assert await queue.run_jobs(count_limit=1, time_limit_ms=5000) == 1
    assert seen == ["hello"]
    assert list(iter_records(store)) == []
