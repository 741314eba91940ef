"""The same add-then-run cycle through RQ, Dramatiq and Celery on the local Redis.

Each function adds ``jobs`` no-op tasks, then runs them all in one worker (RQ SimpleWorker in
burst mode; Dramatiq with one worker thread; Celery's solo pool in a subprocess, started and
warmed up before the clock starts), and returns jobs per second. Imported lazily: a peer that
is not installed fails its own row only.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

REDIS_URL = "redis://127.0.0.1:6379/0"
PAYLOAD = {"user": 12345, "action": "send-welcome-email", "tags": ["a", "b", "c"]}


def noop(payload: Any) -> None:
    """The task every peer runs."""


def rq_cycle(jobs: int) -> float:
    """RQ: enqueue, then a SimpleWorker in burst mode (no fork per job)."""
    import redis

    rq = importlib.import_module("rq")  # optional peers stay Any: no stubs needed
    conn = redis.Redis.from_url(REDIS_URL)
    queue = rq.Queue(f"bench-{uuid.uuid4().hex[:8]}", connection=conn)
    started = time.perf_counter()
    for _ in range(jobs):
        queue.enqueue(noop, PAYLOAD)
    rq.SimpleWorker([queue], connection=conn).work(burst=True, logging_level="WARNING")
    return jobs / (time.perf_counter() - started)


def dramatiq_cycle(jobs: int) -> float:
    """Dramatiq: send, then a one-thread worker until the queue is joined."""
    dramatiq = importlib.import_module("dramatiq")
    redis_broker = importlib.import_module("dramatiq.brokers.redis")
    broker = redis_broker.RedisBroker(url=REDIS_URL, namespace=f"bench-{uuid.uuid4().hex[:8]}")
    dramatiq.set_broker(broker)
    actor = dramatiq.actor(noop, broker=broker, actor_name="noop", max_retries=0)
    started = time.perf_counter()
    for _ in range(jobs):
        actor.send(PAYLOAD)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    broker.join(actor.queue_name, timeout=600_000)
    elapsed = time.perf_counter() - started
    worker.stop()
    broker.close()
    return jobs / elapsed


def celery_cycle(jobs: int) -> float:
    """Celery: a solo-pool worker process (warmed up first), then send and wait for all."""
    import redis

    queue_name = f"bench-{uuid.uuid4().hex[:8]}"
    counter = f"{queue_name}:done"
    env = dict(os.environ, KQ_BENCH_COUNTER=counter)
    command = [
        sys.executable, "-m", "celery", "-A", "bench.peers_celery", "worker", "-P", "solo",
        "-c", "1", "-Q", queue_name, "--without-heartbeat", "--without-gossip",
        "--without-mingle", "-l", "WARNING",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        count = importlib.import_module("bench.peers_celery").count
        count.apply_async((PAYLOAD,), queue=queue_name)
        _wait_for(conn, counter, 1, 60)
        started = time.perf_counter()
        for _ in range(jobs):
            count.apply_async((PAYLOAD,), queue=queue_name)
        _wait_for(conn, counter, jobs + 1, 600)
        return jobs / (time.perf_counter() - started)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        conn.delete(counter)


def _wait_for(conn: Any, key: str, value: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while int(conn.get(key) or 0) < value:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} stayed below {value}")
        time.sleep(0.002)


PEERS: dict[str, Callable[[int], float]] = {
    "RQ (SimpleWorker, redis)": rq_cycle,
    "Dramatiq (redis, 1 thread)": dramatiq_cycle,
    "Celery (redis, solo pool)": celery_cycle,
}
