"""Chaos with real processes: kill beanstalkd and workers with SIGKILL, lose no job."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import pytest
import redis

from kqueue import KQueue, RecoverySweeper
from kqueue.aio import AsyncKQueue
from kqueue.stores.redis import RedisStore
from tests.chaos.async_worker_app import CONCURRENCY
from tests.servers import BeanstalkdProcess

pytestmark = pytest.mark.chaos

JOBS = 3000


@dataclass
class Cluster:
    """Two worker processes, a sweeper and a producer around one real beanstalkd."""

    server: BeanstalkdProcess
    redis_url: str
    prefix: str
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def completions_key(self) -> str:
        return self.prefix + "completions"

    def start_worker(
        self, sleep_s: float = 0.0005, app: str = "tests.chaos.worker_app"
    ) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                app,
                self.server.host,
                str(self.server.port),
                self.redis_url,
                self.prefix,
                self.completions_key,
                str(sleep_s),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        self.workers.append(worker)
        return worker

    def completions(self) -> list[str]:
        client = redis.Redis.from_url(self.redis_url)
        try:
            items = cast("list[bytes]", client.lrange(self.completions_key, 0, -1))
            return [item.decode() for item in items]
        finally:
            client.close()

    def wait_for(self, unique: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        done = self.completions()
        while len(set(done)) < unique and time.monotonic() < deadline:
            time.sleep(0.05)
            done = self.completions()
        return done

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()


@pytest.fixture
def cluster(beanstalkd: BeanstalkdProcess, redis_url: str, redis_prefix: str) -> Iterator[Cluster]:
    cluster = Cluster(beanstalkd, redis_url, redis_prefix)
    yield cluster
    cluster.stop()


def produce(queue: KQueue, count: int) -> threading.Thread:
    def run() -> None:
        for i in range(count):
            queue.add_job("chaos", i)
            if i % 50 == 0:
                time.sleep(0.005)  # spread the adds over the kills

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def produce_async(queue: AsyncKQueue, count: int) -> threading.Thread:
    """``produce`` through AsyncKQueue.add_job, on an event loop of the thread's own."""

    async def run() -> None:
        for i in range(count):
            await queue.add_job("chaos", i)
            if i % 50 == 0:
                await asyncio.sleep(0.005)  # spread the adds over the kills
        await queue.producer.conn.aclose()

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    return thread


def kill_when(cluster: Cluster, done: int, *, keep_binlog: bool) -> float:
    """Wait until ``done`` jobs completed, kill -9 beanstalkd, restart it; the outage length.

    Fails when the kill would not fall mid-run (too few done in time, or all of them)."""
    finished = len(set(cluster.wait_for(done, timeout=30)))
    assert finished >= done, f"only {finished} jobs done in 30 s: the kill would come too early"
    assert finished < JOBS, "every job was done before the kill: nothing was in flight"
    started = time.monotonic()
    cluster.server.kill()
    time.sleep(0.2)
    if keep_binlog:
        cluster.server.start()
    else:
        cluster.server.restart(binlog_dir=False)
    return time.monotonic() - started


def run_chaos(
    cluster: Cluster, *, keep_binlog: bool, backlog_first: bool = False, asyncio_too: bool = False
) -> tuple[list[str], RecoverySweeper, float]:
    """3,000 jobs, two workers, a sweeper, two kills of beanstalkd; the completions.

    ``backlog_first`` adds every job before the workers start, so that beanstalkd holds a
    backlog when it dies; otherwise jobs are added while the kills happen. Also returns the
    seconds from the last restart until every job had completed. ``asyncio_too``: asyncio
    workers (async def handlers, many jobs at once) and the asyncio producer.
    """
    store = RedisStore(cluster.redis_url, prefix=cluster.prefix)
    queue = KQueue(
        host=cluster.server.host,
        port=cluster.server.port,
        bulk_store=store,
        recovery_grace=1.0,
        connect_timeout=0.5,
    )
    if backlog_first:
        produce(queue, JOBS).join(60)
    app = "tests.chaos.async_worker_app" if asyncio_too else "tests.chaos.worker_app"
    for _ in range(2):
        cluster.start_worker(app=app)
    sweeper = RecoverySweeper(queue, interval=0.3).start()
    try:
        count = 0 if backlog_first else JOBS
        if asyncio_too:
            producer = produce_async(AsyncKQueue.from_queue(queue), count)
        else:
            producer = produce(queue, count)
        kill_when(cluster, 800, keep_binlog=keep_binlog)
        kill_when(cluster, 1800, keep_binlog=keep_binlog)
        restarted = time.monotonic()
        producer.join(60)
        done = cluster.wait_for(JOBS, timeout=30)
        recovery = time.monotonic() - restarted
    finally:
        sweeper.stop()
        queue.close()
        store.close()
    return done, sweeper, recovery


def test_beanstalkd_killed_twice_without_binlog_loses_no_job(cluster: Cluster) -> None:
    done, sweeper, recovery = run_chaos(cluster, keep_binlog=False)
    lost = set(map(str, range(JOBS))) - set(done)
    duplicates = len(done) - len(set(done))
    print(
        f"\nno binlog: {JOBS} jobs, 2 kills, lost {len(lost)}, duplicates {duplicates}, "
        f"recovered {sweeper.totals['requeued']} "
        f"(of which accepted while down {sweeper.totals['requeued_unscheduled']}), "
        f"all done {recovery:.2f} s after the last restart"
    )
    assert lost == set()
    assert sweeper.totals["requeued"] > 0
    # Only jobs whose handler was running at a kill can run twice: one per worker per kill.
    assert duplicates <= 2 * 2


def test_beanstalkd_killed_twice_under_asyncio_workers_and_producer_loses_no_job(
    cluster: Cluster,
) -> None:
    done, sweeper, recovery = run_chaos(cluster, keep_binlog=False, asyncio_too=True)
    lost = set(map(str, range(JOBS))) - set(done)
    duplicates = len(done) - len(set(done))
    print(
        f"\nasyncio, no binlog: {JOBS} jobs, 2 kills, lost {len(lost)}, duplicates "
        f"{duplicates}, recovered {sweeper.totals['requeued']}, "
        f"all done {recovery:.2f} s after the last restart"
    )
    assert lost == set()
    assert sweeper.totals["requeued"] > 0
    # Only jobs in flight at a kill can run twice: up to CONCURRENCY per worker per kill.
    assert duplicates <= 2 * 2 * CONCURRENCY


def test_beanstalkd_restarted_from_binlog_loses_and_requeues_nothing(
    beanstalkd_binlog: BeanstalkdProcess, redis_url: str, redis_prefix: str
) -> None:
    cluster = Cluster(beanstalkd_binlog, redis_url, redis_prefix)
    try:
        done, sweeper, recovery = run_chaos(cluster, keep_binlog=True, backlog_first=True)
    finally:
        cluster.stop()
    lost = set(map(str, range(JOBS))) - set(done)
    duplicates = len(done) - len(set(done))
    print(
        f"\nbinlog: {JOBS} jobs, 2 kills, lost {len(lost)}, duplicates {duplicates}, "
        f"references moved {sweeper.totals['references_updated']}, "
        f"all done {recovery:.2f} s after the last restart"
    )
    assert lost == set()
    assert sweeper.totals["requeued"] == 0  # every job was in the binlog: nothing to put again
    assert sweeper.totals["references_updated"] > 0
    assert duplicates <= 2 * 2  # reserved jobs come back ready: at most those in flight


def test_worker_killed_mid_job_loses_nothing(cluster: Cluster) -> None:
    store = RedisStore(cluster.redis_url, prefix=cluster.prefix)
    queue = KQueue(host=cluster.server.host, port=cluster.server.port, bulk_store=store)
    try:
        victim = cluster.start_worker()
        queue.add_job("chaos", "slow", ttr=60)
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "slow job started"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        started = time.monotonic()
        cluster.start_worker()
        # The dead worker's connection closed, so beanstalkd released the job at once:
        # the new worker runs it again (it sleeps in the handler again, so look at the broker).
        while queue.stats().job_types["chaos"]["current-jobs-reserved"] == 0:
            assert time.monotonic() - started < 10
            time.sleep(0.05)
        assert time.monotonic() - started < 10  # far less than the 60 s TTR
        assert store.count() == 1
    finally:
        queue.close()
        store.close()
