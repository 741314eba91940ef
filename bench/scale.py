"""Costs that must not grow with the queue (issue 22), measured in one run.

Run from the repository root (beanstalkd installed, Redis at 127.0.0.1:6379)::

    python -m bench.scale [--records 10000 100000 1000000] [--types 10 100 1000] [--lanes 0 16]

Recovery: for each N, N jobs are added with ``add_jobs`` (RedisStore, batches of 1000: the
same store for every N, no faster setup), then a recovery pass runs while beanstalkd holds all
of them (the healthy pass: beside the N jobs, N/100 records (at least 100) written a moment
ago and not yet scheduled, as producers at work leave them, which the pass must not read
either), then beanstalkd is killed -9 and started empty and a pass puts all N back; best of
three rounds up to 100,000 records, one round above. Each pass runs in a
child process of its own, which reports its time and its peak resident memory (VmHWM): a
sweeper that held every record at once would grow with N. Printed
as ratios to the add_jobs time of the same N (put back at half add_jobs' rate or better is a
ratio of at most 2).

Job types (:mod:`bench.job_types`): one worker process without a store, a fresh beanstalkd
for each round, 2,000 jobs spread evenly over the types (one add_job each, types in turn),
then ``run_jobs`` until none is ready, then the same again with the worker's watches in place:
the add and run rates, and their ratios to the rates at the smallest count of types (best of
``--type-rounds`` rounds, interleaved over the counts), with the CPU time beanstalkd itself
spent per job (from /proc) beside the worker process's own: which part of the cost is the
server's. Then beanstalkd alone at the same counts of tubes (:mod:`bench.tube_floor`, raw
pipelined commands, ``--floor-jobs`` jobs): the floor no client goes below.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from bench.job_types import measure, print_job_types
from bench.tube_floor import floor_row, print_floor
from kqueue import KQueue
from kqueue.stores import Store
from kqueue.stores.base import new_record
from tests.servers import BeanstalkdProcess, running_beanstalkd

REDIS_URL = "redis://127.0.0.1:6379/0"
PAYLOAD = {"user": 12345, "action": "send-welcome-email"}

SWEEP_CHILD = """
import json, sys, time
from kqueue.config import QueueConfig
from kqueue.stores.redis import RedisStore
from kqueue.sweeper import Sweep

def vm(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))

host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = RedisStore("redis://127.0.0.1:6379/0", prefix=prefix)
store.count()  # connected before the clock starts, as a running sweeper is
conn = QueueConfig(host=host, port=port).new_connection()
conn.connect()
base = vm("VmRSS:")
started = time.perf_counter()
report = Sweep(store, conn, tube_prefix="kq-", grace=30.0).run()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "scanned": report.scanned, "live": report.live,
                  "requeued": report.requeued, "errors": len(report.errors),
                  "base_kb": base, "peak_kb": vm("VmHWM:")}))
"""


def sweep_in_child(server: BeanstalkdProcess, prefix: str) -> dict[str, float]:
    """One recovery pass in a fresh process: its time, counts and memory."""
    out = subprocess.run(
        [sys.executable, "-c", SWEEP_CHILD, server.host, str(server.port), prefix],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def drop_prefix(prefix: str) -> None:
    """Remove every Redis key of a benchmark's store."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)
    client.close()


def producers_at_work(store: Store, count: int) -> list[str]:
    """Write ``count`` records as add_jobs does and leave them unscheduled, as producers
    between their two writes leave them; their keys."""
    now = time.time()
    records = [
        new_record(f"young-{i}", "scale", b"{}", "json", priority=1024, delay=0, ttr=60, now=now)
        for i in range(count)
    ]
    store.put_many(records)
    return [record.key for record in records]


@dataclass
class RecoveryRow:
    """One N: the add_jobs time, and the healthy and put-back passes as the child reported
    them (seconds, counts, memory in kB)."""

    records: int
    add: float
    healthy: dict[str, float]
    lost: dict[str, float]


def recovery_row(records: int) -> RecoveryRow:
    """add_jobs time, healthy pass and put-back pass for ``records`` stored jobs."""
    prefix = f"kqbench:{uuid.uuid4().hex[:8]}:"
    try:
        with running_beanstalkd() as server:
            from kqueue.stores.redis import RedisStore

            store = RedisStore(REDIS_URL, prefix=prefix)
            with KQueue(host=server.host, port=server.port, bulk_store=store) as queue:
                payloads = [PAYLOAD] * records
                started = time.perf_counter()
                for start in range(0, records, 100_000):
                    queue.add_jobs("scale", payloads[start : start + 100_000])
                add_seconds = time.perf_counter() - started
            young = producers_at_work(store, max(100, records // 100))
            healthy = sweep_in_child(server, prefix)
            assert healthy["scanned"] == 0, healthy
            store.delete_many(young)
            server.kill()
            server.start()
            lost = sweep_in_child(server, prefix)
            assert lost["requeued"] == records, lost
            store.close()
    finally:
        drop_prefix(prefix)
    return RecoveryRow(records, add_seconds, healthy, lost)


def best_of(rounds: list[RecoveryRow]) -> RecoveryRow:
    """The fastest add_jobs, healthy pass and put back of several rounds (each measured on
    its own: the machine's load moves single runs), with the highest memory."""

    def fastest(passes: list[dict[str, float]]) -> dict[str, float]:
        best = dict(min(passes, key=lambda p: p["seconds"]))
        best["peak_kb"] = max(p["peak_kb"] for p in passes)
        return best

    return RecoveryRow(
        rounds[0].records,
        min(r.add for r in rounds),
        fastest([r.healthy for r in rounds]),
        fastest([r.lost for r in rounds]),
    )


def print_recovery(rows: list[RecoveryRow]) -> None:
    print("\nRecovery (RedisStore, one beanstalkd), seconds, best of the rounds run (3 up to")
    print("100,000 records, else 1); ratios to add_jobs of the same N; the healthy pass read")
    print("no record (it also left alone N/100 records not yet scheduled):")
    print("  records | add_jobs | healthy pass       | put back after an empty restart | peak RSS")
    for row in rows:
        add, healthy, lost = row.add, row.healthy, row.lost
        peak = max(healthy["peak_kb"], lost["peak_kb"]) / 1024
        fast = f"{healthy['seconds']:.4f} ({healthy['seconds'] / add:.4f}x)"
        back = lost["seconds"]
        put_back = f"{back:.2f} ({back / add:.2f}x, {row.records / back:,.0f}/s)"
        print(
            f"{row.records:>9,} | {add:>8.2f} | {fast:<18} | {put_back:<31} | {peak:.1f} MB "
            f"(at start {lost['base_kb'] / 1024:.1f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--types", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument(
        "--lanes", type=int, nargs="*", default=[0], help="lanes settings (0: a tube per type)"
    )
    parser.add_argument("--type-jobs", type=int, default=2000)
    parser.add_argument("--type-rounds", type=int, default=5, help="best of this many runs")
    parser.add_argument("--floor-jobs", type=int, default=20_000, help="0: no raw floor")
    args = parser.parse_args()
    if args.types:
        print_job_types(measure(args.types, args.type_jobs, args.type_rounds, args.lanes))
    if args.types and args.floor_jobs:
        print_floor([floor_row(types, args.floor_jobs) for types in args.types])
    rows = [
        best_of([recovery_row(records) for _ in range(3 if records <= 100_000 else 1)])
        for records in args.records
    ]
    print_recovery(rows)


if __name__ == "__main__":
    main()
