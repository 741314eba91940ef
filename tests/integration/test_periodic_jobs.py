"""Several schedulers at once, over every store and both brokers: exactly one job per tick.

Each scheduler has its own queue (its own connections) and an injected clock; all of them
look at the same pretended moments together (a barrier per moment), so every tick is raced
by all of them.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from kqueue import KQueue, Scheduler
from kqueue.stores import Store
from tests.contract.conftest import open_test_store
from tests.servers import BeanstalkdProcess

START = datetime(2026, 6, 1, 8, 0, 0, 200_000, tzinfo=timezone.utc).timestamp()
MOMENTS = [START + 60 * minute + 0.5 * (minute % 3) for minute in range(12)]
"""Twelve looks, one in each minute of an every-minute schedule, a little late each."""


def declare(queue: KQueue) -> KQueue:
    queue.add_periodic("tick", "* * * * *", payload={"every": "minute"})
    # 07:55 passed before the first look (run once), 08:05 comes on time
    queue.add_periodic("catchup", "5,55 * * * *", missed="run_once")
    return queue


def look_together(schedulers: list[Scheduler], moments: list[float]) -> list[Any]:
    """Every scheduler runs run_pending at each moment, all at once; what each fired."""
    barrier = threading.Barrier(len(schedulers))
    fired: list[Any] = []

    def run(scheduler: Scheduler) -> None:
        try:
            for moment in moments:
                barrier.wait(timeout=30)
                fired.extend(scheduler.run_pending(moment))
        except BaseException as exc:  # reported in the main thread
            fired.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return fired


def jobs_per_tick(store: Store) -> Counter[str]:
    """How many jobs the store holds of each job type (a job per tick, if all is well)."""
    return Counter(record.job_type for record in store.scan(limit=1000))


def test_many_schedulers_at_once_add_exactly_one_job_per_tick(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    schedulers = [Scheduler(declare(make_queue())) for _ in range(6)]
    fired = look_together(schedulers, MOMENTS)
    assert [f for f in fired if isinstance(f, BaseException)] == []
    assert len(fired) == 6 * 14  # each scheduler handled every tick
    ticks = {(f.schedule, f.tick) for f in fired}
    assert len(ticks) == 12 + 2
    by_tick: dict[tuple[str, float], set[int]] = {}
    for f in fired:
        by_tick.setdefault((f.schedule, f.tick), set()).add(f.job_id)
    assert jobs_per_tick(store) == Counter({"tick": 12, "catchup": 2})
    assert all(len(ids - {0}) <= 1 for ids in by_tick.values())


def _schedule_in_process(
    address: tuple[str, int], spec: dict[str, str], barrier: Any, out: Any
) -> None:
    from kqueue.stores.redis import RedisStore
    from kqueue.stores.sql import SQLStore

    store: Store
    if spec["kind"] == "redis":
        store = RedisStore(spec["url"], prefix=spec["prefix"])
    else:
        store = SQLStore(spec["url"])
    try:
        with KQueue(host=address[0], port=address[1], bulk_store=store) as queue:
            scheduler = Scheduler(declare(queue))
            store.count()
            for moment in MOMENTS:
                barrier.wait(timeout=60)
                scheduler.run_pending(moment)
            out.put(scheduler.fired)
    except BaseException as exc:
        out.put(repr(exc))
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["redis", "sqlite", "postgres", "mysql"])
def test_scheduler_processes_at_once_add_exactly_one_job_per_tick(
    kind: str, beanstalkd: BeanstalkdProcess, request: pytest.FixtureRequest
) -> None:
    spec = {"kind": kind}
    if kind == "redis":
        spec.update(url=request.getfixturevalue("redis_url"))
        spec.update(prefix=request.getfixturevalue("redis_prefix"))
    else:
        spec["url"] = request.getfixturevalue(f"{kind}_url")
    store = open_test_store(kind, request)
    store.count()
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(3), context.Queue()
    args = ((beanstalkd.host, beanstalkd.port), spec, barrier, out)
    children = [context.Process(target=_schedule_in_process, args=args) for _ in range(3)]
    for child in children:
        child.start()
    handled = [out.get(timeout=180) for _ in children]
    for child in children:
        child.join(timeout=30)
    try:
        assert handled == [14, 14, 14]
        assert jobs_per_tick(store) == Counter({"tick": 12, "catchup": 2})
    finally:
        store.close()
