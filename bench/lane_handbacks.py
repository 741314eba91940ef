"""What a worker pays for the jobs of a lane it has no handler for (see :mod:`kqueue.lanes`).

One lane (``lanes=1``), one worker process with the handler of type ``a`` only; ``jobs`` jobs
of ``a`` behind a backlog of ``backlog`` jobs of ``b``, which no worker runs, put first (so
beanstalkd hands them out first). The worker runs the ``a`` jobs, handing back each ``b``
job it reserves on the way. The time above the run without a backlog, per ``b`` job, is the
cost of one hand-back; without a store (a fresh copy put, the original deleted) and with a
memory store (a release). Rounds alternate; best of the rounds.

    python -m bench.lane_handbacks [--jobs 2000] [--backlog 2000 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

from kqueue import KQueue
from kqueue.stores.memory import MemoryStore
from tests.servers import running_beanstalkd

PAYLOAD = {"user": 12345, "action": "send-welcome-email"}


def run_seconds(backlog: int, jobs: int, *, stored: bool) -> float:
    """Seconds for the worker to run ``jobs`` jobs of ``a`` behind ``backlog`` of ``b``."""
    with running_beanstalkd() as server:
        store = MemoryStore() if stored else None
        with KQueue(host=server.host, port=server.port, lanes=1, bulk_store=store) as queue:
            queue.add_jobs("b", [PAYLOAD] * backlog)
            queue.add_jobs("a", [PAYLOAD] * jobs)
            queue.add_handler("a", lambda job: None)
            started = time.perf_counter()
            ran = queue.run_jobs(count_limit=jobs, time_limit_ms=60_000)
            seconds = time.perf_counter() - started
            assert ran == jobs, ran
            return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--backlog", type=int, nargs="*", default=[2000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("store | backlog | run of the a jobs | us per hand-back")
    sizes = [0, *args.backlog]
    times: dict[tuple[bool, int], list[float]] = {}
    for _ in range(args.rounds):
        for stored in (False, True):
            for size in sizes:
                seconds = run_seconds(size, args.jobs, stored=stored)
                times.setdefault((stored, size), []).append(seconds)
    for stored in (False, True):
        best = {size: min(times[stored, size]) for size in sizes}
        for size in sizes:
            extra = (best[size] - best[0]) / size * 1e6 if size else 0.0
            rate = args.jobs / best[size]
            name = "memory" if stored else "none"
            print(f"{name:>6} | {size:>7,} | {rate:>9,.0f} jobs/s | {extra:.1f}")


if __name__ == "__main__":
    main()
