"""Chaos with real processes on a queue over three beanstalkd servers: one is killed -9 for
good and another killed and restarted empty while a producer adds 6,000 jobs and two worker
processes run them. No add fails, no job is lost, duplicates stay bounded."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import cast

import pytest
import redis

from kqueue import KQueue, RecoverySweeper
from kqueue.stores.redis import RedisStore
from tests.chaos.bonded_worker_app import WINDOW
from tests.conftest import _spawn
from tests.servers import BeanstalkdProcess

pytestmark = pytest.mark.chaos

JOBS = 6000
BACKLOG = 3000


@pytest.fixture
def three() -> Iterator[list[BeanstalkdProcess]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(contextlib.contextmanager(_spawn)()) for _ in range(3)]


def completions(url: str, key: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return [item.decode() for item in cast("list[bytes]", client.lrange(key, 0, -1))]
    finally:
        client.close()


def wait_done(url: str, key: str, unique: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    done = completions(url, key)
    while len(set(done)) < unique and time.monotonic() < deadline:
        time.sleep(0.05)
        done = completions(url, key)
    return done


def test_one_server_killed_for_good_and_one_restarted_empty_lose_no_job(
    three: list[BeanstalkdProcess], redis_url: str, redis_prefix: str
) -> None:
    servers = ",".join(f"{b.host}:{b.port}" for b in three)
    key = redis_prefix + "completions"
    store = RedisStore(redis_url, prefix=redis_prefix)
    queue = KQueue(
        servers=servers.split(","),
        bulk_store=store,
        recovery_grace=1.0,
        server_down_grace=1.0,
        connect_timeout=0.5,
        command_timeout=2,
    )
    failures: list[BaseException] = []
    backlog = threading.Event()

    def produce() -> None:
        for n in range(JOBS):
            try:
                queue.add_job("chaos", n)
            except BaseException as exc:  # counted: the test says which add failed
                failures.append(exc)
            if n == BACKLOG:
                backlog.set()
            if n % 50 == 0:
                time.sleep(0.005)  # spread the adds over the kills

    sweeper = RecoverySweeper(queue, interval=0.3).start()
    producer = threading.Thread(target=produce)
    producer.start()
    # Workers start behind a backlog, so that the servers hold waiting jobs when they die.
    assert backlog.wait(60)
    workers = []
    for _ in range(2):
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.bonded_worker_app", servers, redis_url,
             redis_prefix, key],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        workers.append(worker)
    try:
        assert len(set(wait_done(redis_url, key, 1000, 60))) >= 1000
        three[0].kill()  # for good
        assert len(set(wait_done(redis_url, key, 2500, 60))) >= 2500
        three[1].restart(binlog_dir=False)  # killed -9, back empty
        producer.join(120)
        done = wait_done(redis_url, key, JOBS, 90)
    finally:
        sweeper.stop()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
        queue.close()
        store.close()
    lost = set(map(str, range(JOBS))) - set(done)
    duplicates = len(done) - len(set(done))
    print(
        f"\nbonded, 3 servers, {JOBS} jobs, one killed for good, one restarted empty: lost "
        f"{len(lost)}, duplicates {duplicates}, recovered {sweeper.totals['requeued']}"
    )
    assert failures == []
    assert lost == set()
    assert sweeper.totals["requeued"] > 0
    # Only jobs a worker held at a kill (its window) and puts cut off by one can run twice.
    assert duplicates <= 2 * 2 * WINDOW + 2
