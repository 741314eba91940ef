"""``kqueue demo``: the whole story in one run, with no servers.

An in-process fakebeanstalk and a SQLite store in a temporary folder. A producer enqueues a few
thousand jobs of several types, priorities and delays; two workers run them. Failures are
deliberate: about 9% of payloads are "flaky" (the first attempt raises, the retry succeeds) and
1% "poison" (every attempt raises, so they are buried as dead letters after 3 attempts). Part
way the broker crashes and comes back empty, and the recovery sweeper puts back every job it
lost. The summary ends with ``duplicates`` (jobs run twice: at most those in flight at the
crash, usually 0) and ``lost`` (always 0).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from kqueue.cli.output import Progress, table
from kqueue.job import PRIO_BULK, PRIO_HIGH, PRIO_LOW, PRIO_NORMAL, PRIO_URGENT, Job
from kqueue.queue import KQueue
from kqueue.retry import RetryPolicy
from kqueue.stores.base import Store, iter_records
from kqueue.sweeper import RecoverySweeper

JOB_TYPES = {
    "email.send": PRIO_NORMAL,
    "image.resize": PRIO_HIGH,
    "report.build": PRIO_LOW,
    "alert.page": PRIO_URGENT,
    "index.refresh": PRIO_BULK,
}
if TYPE_CHECKING:
    from fakebeanstalk import FakeBeanstalkServer

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=False)


class DemoHandlers:
    """Handlers that succeed, fail once (then succeed), or always fail, by payload."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.completed: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()

    def __call__(self, job: Job) -> None:
        with self.lock:
            self.attempts[job.data["n"]] += 1
        if job.data["fate"] == "poison":
            raise ValueError("poison payload")
        if job.data["fate"] == "flaky" and job.attempts == 1:
            raise ConnectionError("flaky upstream")
        with self.lock:
            self.completed[job.data["n"]] += 1


def run_demo(jobs: int, workers: int, crash_at: float, seed: int) -> dict[str, object]:
    """Run the scenario; the summary figures."""
    from fakebeanstalk import FakeBeanstalkServer
    from kqueue.stores.sql import SQLStore

    rng = random.Random(seed)
    handlers = DemoHandlers()
    with tempfile.TemporaryDirectory(prefix="kqueue-demo-") as tmp:
        server = FakeBeanstalkServer().start()
        store = SQLStore(f"sqlite:///{Path(tmp) / 'jobs.sqlite3'}")
        queues = [_queue(server.port, store, handlers) for _ in range(workers + 1)]
        producer = queues[0]
        expected = _produce(producer, jobs, rng)
        started = time.monotonic()
        threads = [threading.Thread(target=q.run_jobs, daemon=True) for q in queues[1:]]
        sweeper = RecoverySweeper(producer, interval=0.5, grace=0.5).start()
        for thread in threads:
            thread.start()
        crashed = _watch(handlers, expected, crash_at, server, store)
        elapsed = time.monotonic() - started
        for queue in queues[1:]:
            queue.stop()
        for thread in threads:
            thread.join(10)
        sweeper.stop()
        summary = _summary(handlers, expected, queues, sweeper, elapsed, crashed)
        summary["buried (poison, deliberate)"] = _buried(store)
        for queue in queues:
            queue.close()
        store.close()
        server.stop()
    return summary


def _queue(port: int, store: Store, handlers: DemoHandlers) -> KQueue:
    queue = KQueue(port=port, bulk_store=store, retry=FAST_RETRY, reconnect_delay=(0.02, 0.2))
    for job_type in JOB_TYPES:
        queue.add_handler(job_type, handlers)
    return queue


def _produce(queue: KQueue, jobs: int, rng: random.Random) -> dict[str, str]:
    """Enqueue the jobs; each job's fate by its number."""
    expected = {}
    progress = Progress("enqueueing", jobs)
    for n in range(jobs):
        job_type = rng.choice(list(JOB_TYPES))
        roll = rng.random()
        fate = "poison" if roll < 0.01 else "flaky" if roll < 0.1 else "ok"
        delay = 1 if rng.random() < 0.05 else 0
        queue.add_job(
            job_type, {"n": str(n), "fate": fate}, priority=JOB_TYPES[job_type], delay=delay
        )
        expected[str(n)] = fate
        progress.advance()
    progress.done()
    return expected


def _watch(
    handlers: DemoHandlers,
    expected: dict[str, str],
    crash_at: float,
    server: FakeBeanstalkServer,
    store: Store,
) -> bool:
    """Wait for every job to settle; crash the broker once ``crash_at`` of them are done."""
    goal = sum(1 for fate in expected.values() if fate != "poison")
    progress = Progress("running", goal)
    crashed = False
    deadline = time.monotonic() + 60
    while len(handlers.completed) < goal and time.monotonic() < deadline:
        time.sleep(0.05)
        progress.advance(len(handlers.completed) - progress.count)
        if not crashed and len(handlers.completed) >= crash_at * goal:
            server.crash()
            time.sleep(0.2)
            server.restart()
            crashed = True
    poison = sum(1 for fate in expected.values() if fate == "poison")
    while _buried(store) < poison and time.monotonic() < deadline:
        time.sleep(0.05)
    progress.done()
    return crashed


def _buried(store: Store) -> int:
    """Buried records (once every other job is done, the store holds little else)."""
    return sum(record.state == "buried" for record in iter_records(store))


def _summary(
    handlers: DemoHandlers,
    expected: dict[str, str],
    queues: list[KQueue],
    sweeper: RecoverySweeper,
    elapsed: float,
    crashed: bool,
) -> dict[str, object]:
    counters: Counter[str] = Counter()
    for queue in queues:
        counters.update(queue.counters)
    should_complete = {n for n, fate in expected.items() if fate != "poison"}
    lost = len(should_complete - set(handlers.completed))
    return {
        "jobs added": len(expected),
        "completed": sum(handlers.completed.values()),
        "retried (flaky, deliberate)": counters["retried"],
        "buried (poison, deliberate)": counters["buried"],
        "broker crashes": int(crashed),
        "recovered by the sweeper": sweeper.totals["requeued"],
        "jobs/s": round(len(should_complete) / elapsed),
        "seconds": round(elapsed, 1),
        "duplicates": sum(handlers.completed.values()) - len(handlers.completed),
        "lost": lost,
    }


def cmd_demo(args: argparse.Namespace, _settings: object) -> int:
    """Run the demo and print its summary table; exit 1 if any job was lost."""
    print(
        f"kqueue demo: {args.jobs} jobs, {args.workers} workers, fakebeanstalk + SQLite, "
        f"broker crash at {args.crash_at:.0%} done\n"
        "Deliberate failures: about 9% of payloads are flaky (their first attempt raises, the "
        "retry succeeds)\nand 1% are poison (every attempt raises: buried as dead letters "
        "after 3 attempts).\n"
        f"Source: {Path(__file__).resolve()}"
    )
    summary = run_demo(args.jobs, args.workers, args.crash_at, args.seed)
    print(table(["", "value"], [[k, v] for k, v in summary.items()]))
    return 0 if summary["lost"] == 0 else 1
