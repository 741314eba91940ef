"""Chaos with a real Sentinel set: the Redis master killed -9 in the middle of a run.

With the replication wait on (``replicas=1``), an add_job that returned has its record on the
replica, so the failover loses no accepted job: every one of them runs. The Sentinel set is
this module's own (the session's is shared by tests that expect their master alive).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from kqueue import KQueue, KQueueError, RecoverySweeper
from kqueue.aio.stores import AsyncRedisStore
from kqueue.stores.redis import RedisStore
from tests.contract.records import make_record
from tests.redis_servers import SentinelSet, running_sentinel_set
from tests.servers import BeanstalkdProcess, wait_for

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def sentinel_set() -> Iterator[SentinelSet]:
    with running_sentinel_set() as topology:
        yield topology


class Producer(threading.Thread):
    """Adds jobs 0, 1, 2, ... until stopped; keeps the ids whose add_job returned."""

    def __init__(self, queue: KQueue) -> None:
        super().__init__(daemon=True)
        self.queue = queue
        self.accepted: list[int] = []
        self.refused: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            try:
                self.queue.add_job("chaos", n)
            except KQueueError as exc:  # not accepted: the caller would retry or report
                self.refused.append(type(exc).__name__)
                time.sleep(0.02)
            else:
                self.accepted.append(n)
            n += 1


def test_a_failover_with_the_replication_wait_loses_no_accepted_job(
    sentinel_set: SentinelSet, beanstalkd: BeanstalkdProcess
) -> None:
    url = sentinel_set.url(query="replicas=1")
    prefix = f"kqchaos:{uuid.uuid4().hex[:8]}:"
    done: list[int] = []

    def make_queue() -> KQueue:
        store = RedisStore(url, prefix=prefix, connect_timeout=0.5, socket_timeout=2)
        return KQueue(
            host=beanstalkd.host,
            port=beanstalkd.port,
            bulk_store=store,
            recovery_grace=1.0,
            reconnect_delay=(0.02, 0.2),
        )

    queues = [make_queue() for _ in range(3)]
    for queue in queues[1:]:
        queue.add_handler("chaos", lambda job: done.append(job.data))
    workers = [threading.Thread(target=q.run_jobs, daemon=True) for q in queues[1:]]
    producer = Producer(queues[0])
    sweeper = RecoverySweeper(queues[0], interval=0.3)
    for thread in (*workers, producer):
        thread.start()
    sweeper.start()
    phases = [time.monotonic()]
    try:
        assert wait_for(lambda: len(done) >= 300, timeout=30), "no progress before the kill"
        phases.append(time.monotonic())
        before = len(producer.accepted)
        old = sentinel_set.by_port(sentinel_set.master_port())
        assert old is not None
        killed_at = time.monotonic()
        sentinel_set.fail_over()
        failover = time.monotonic() - killed_at
        sentinel_set.rejoin(old)  # a replica again: the wait can be met
        after = len(producer.accepted)
        assert wait_for(lambda: len(producer.accepted) >= after + 300, timeout=30), (
            "no job accepted after the failover"
        )
        phases.append(time.monotonic())
        producer.stopping.set()
        producer.join(10)
        accepted = set(producer.accepted)
        assert wait_for(lambda: accepted <= set(done), timeout=30)
        phases.append(time.monotonic())
    finally:
        producer.stopping.set()
        for queue in queues[1:]:
            queue.stop()
        sweeper.stop()
        for thread in workers:
            thread.join(10)
        for queue in queues:
            queue.close()
    lost = accepted - set(done)
    duplicates = len(done) - len(set(done))
    print(
        f"\nSentinel failover in {failover:.1f} s with replicas=1: accepted {len(accepted)} "
        f"({before} before the kill), refused {len(producer.refused)} "
        f"({', '.join(sorted(set(producer.refused)))}), lost {len(lost)}, "
        f"duplicates {duplicates}, recovered {sweeper.totals['requeued']}; phases "
        f"{', '.join(f'{b - a:.1f}' for a, b in itertools.pairwise(phases))} s"
    )
    assert lost == set()
    assert producer.refused, "the kill fell outside the run: no add_job saw it"


def test_the_async_store_follows_the_new_master(sentinel_set: SentinelSet) -> None:
    store = RedisStore(sentinel_set.url(), prefix=f"kqchaos:{uuid.uuid4().hex[:8]}:")
    access = AsyncRedisStore(store)

    async def run() -> None:
        await access.put_many([make_record("before")])
        old = sentinel_set.by_port(sentinel_set.master_port())
        assert old is not None
        sentinel_set.fail_over()
        deadline = time.monotonic() + 10
        while True:  # the calls in flight at the failover fail; the next reach the new master
            try:
                await access.put_many([make_record("after")])
                break
            except KQueueError:
                assert time.monotonic() < deadline, "still failing 10 s after the failover"
                await asyncio.sleep(0.1)
        assert set(await access.get_many(["before", "after"])) == {"before", "after"}
        await access.aclose()
        sentinel_set.rejoin(old)

    asyncio.run(run())
    store.close()
