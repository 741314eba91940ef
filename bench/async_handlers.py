"""The asyncio worker against the sync one, and async add_job latency against the sync one's.

Run from the repository root (services as in ci/test.sh)::

    python -m bench.async_handlers [--jobs 1000] [--sleep 0.1] [--store redis]

Every figure comes from one run on one fresh real beanstalkd, in this one process:

- async: ``--jobs`` jobs whose ``async def`` handler awaits ``--sleep`` seconds, run by one
  asyncio worker with ``concurrency=--jobs`` (target: at most 2 s for 1,000 x 100 ms);
- sync: the same handler as a plain function (``time.sleep``) on the sync worker, over
  ``--sync-jobs`` jobs (it runs them one after another: the full count would take
  jobs x sleep), projected to ``--jobs``;
- add_job latency: ``--adds`` sequential add_job calls, sync producer and ``await``
  AsyncKQueue.add_job in alternating rounds (the same machine load for both), p50 and p99
  of each (target: async p50 no worse than sync).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from kqueue import Job, KQueue
from kqueue.aio import AsyncKQueue
from tests.servers import BeanstalkdProcess, running_beanstalkd

STORES = {
    "inline": None,
    "memory": "memory://",
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
}
PAYLOAD = {"user": 12345, "action": "send-welcome-email"}


PREFIXES: list[str] = []
"""The Redis key prefixes this run wrote under (removed at the end)."""


def _settings(server: BeanstalkdProcess, store: str | None) -> dict[str, Any]:
    url = store
    if store is not None and store.startswith("redis"):
        PREFIXES.append(f"bench-{uuid.uuid4().hex[:8]}:")
        url = f"{store}?prefix={PREFIXES[-1]}"
    return {"host": server.host, "port": server.port, "bulk_store": url}


def _remove_keys(url: str) -> None:
    """Delete every key this run wrote (its jobs of the latency rounds were never run)."""
    import redis

    client = redis.Redis.from_url(url)
    for prefix in PREFIXES:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    client.close()


async def async_worker(settings: dict[str, Any], jobs: int, sleep: float) -> float:
    """Seconds for one asyncio worker to run ``jobs`` jobs that each await ``sleep``."""
    queue = AsyncKQueue(**settings)

    async def wait(job: Job) -> None:
        await asyncio.sleep(sleep)

    queue.add_handler("io", wait)
    await queue.add_jobs("io", [PAYLOAD] * jobs)
    started = time.perf_counter()
    ran = await queue.run_jobs(count_limit=jobs, concurrency=jobs)
    elapsed = time.perf_counter() - started
    await queue.close()
    assert ran == jobs, f"ran {ran} of {jobs}"
    return elapsed


def sync_worker(settings: dict[str, Any], jobs: int, sleep: float) -> float:
    """Seconds for the sync worker to run ``jobs`` jobs that each sleep ``sleep``."""
    with KQueue(**settings) as queue:
        queue.add_handler("io", lambda job: time.sleep(sleep))
        queue.add_jobs("io", [PAYLOAD] * jobs)
        started = time.perf_counter()
        ran = queue.run_jobs(count_limit=jobs, time_limit_ms=0)
        elapsed = time.perf_counter() - started
    assert ran == jobs, f"ran {ran} of {jobs}"
    return elapsed


def add_latencies(
    settings: dict[str, Any], adds: int, rounds: int = 20
) -> tuple[list[float], list[float]]:
    """Microseconds of each sequential add_job, sync producer and ``await`` AsyncKQueue, in
    alternating rounds (both see the same load of a shared machine)."""
    loop = asyncio.new_event_loop()
    aqueue = AsyncKQueue(**settings)
    sync_us: list[float] = []
    async_us: list[float] = []

    async def async_round(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await aqueue.add_job("lat", PAYLOAD)
            async_us.append((time.perf_counter() - started) * 1e6)

    with KQueue(**settings) as queue:
        queue.add_job("lat", PAYLOAD)  # connected, store warm
        loop.run_until_complete(aqueue.add_job("lat", PAYLOAD))
        for _ in range(rounds):
            for _ in range(adds // rounds):
                started = time.perf_counter()
                queue.add_job("lat", PAYLOAD)
                sync_us.append((time.perf_counter() - started) * 1e6)
            loop.run_until_complete(async_round(adds // rounds))
    loop.run_until_complete(aqueue.close())
    loop.close()
    return sync_us, async_us


async def concurrent_adds(settings: dict[str, Any], adds: int, tasks: int) -> float:
    """Seconds for ``adds`` add_job calls made by ``tasks`` coroutines at once (a web app
    under load: their commands pipeline on one connection)."""
    queue = AsyncKQueue(**settings)
    await queue.add_job("lat", PAYLOAD)

    async def adder(count: int) -> None:
        for _ in range(count):
            await queue.add_job("lat", PAYLOAD)

    started = time.perf_counter()
    await asyncio.gather(*(adder(adds // tasks) for _ in range(tasks)))
    elapsed = time.perf_counter() - started
    await queue.close()
    return elapsed


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--sync-jobs", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--adds", type=int, default=2000)
    parser.add_argument("--store", choices=sorted(STORES), default="redis")
    args = parser.parse_args()
    if args.adds < 50:  # 20 alternating rounds of each producer, and 50 coroutines at once
        parser.error("--adds must be at least 50")
    with running_beanstalkd() as server:
        settings = _settings(server, STORES[args.store])
        async_s = asyncio.run(async_worker(settings, args.jobs, args.sleep))
        sync_s = sync_worker(_settings(server, STORES[args.store]), args.sync_jobs, args.sleep)
        sync_us, async_us = add_latencies(_settings(server, STORES[args.store]), args.adds)
        many_s = asyncio.run(concurrent_adds(_settings(server, STORES[args.store]), args.adds, 50))
    store_url = STORES[args.store]
    if store_url is not None and store_url.startswith("redis"):
        _remove_keys(store_url)
    projected = sync_s * args.jobs / args.sync_jobs
    print(f"store: {args.store}; {args.jobs} jobs x await {args.sleep * 1000:.0f} ms")
    print(f"async worker, concurrency {args.jobs}: {async_s:.2f} s wall (target <= 2 s)")
    print(
        f"sync worker: {sync_s:.2f} s for {args.sync_jobs} jobs -> {projected:.1f} s projected "
        f"for {args.jobs} ({projected / async_s:.0f}x the async worker)"
    )
    for name, samples in (("sync", sync_us), ("async", async_us)):
        print(
            f"{name} add_job: p50 {statistics.median(samples):.0f} us, "
            f"p99 {_pct(samples, 99):.0f} us ({len(samples)} adds)"
        )
    ratio = statistics.median(async_us) / statistics.median(sync_us)
    print(f"async/sync add_job p50: {ratio:.2f} (target <= 1)")
    sequential_s = sum(sync_us) / 1e6
    print(
        f"{args.adds} adds from 50 coroutines at once: {many_s:.2f} s "
        f"({args.adds / many_s:.0f}/s; the sync producer one after another: "
        f"{args.adds / sequential_s:.0f}/s)"
    )


if __name__ == "__main__":
    main()
