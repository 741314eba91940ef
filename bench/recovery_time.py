"""How long lost jobs take to be ready again after beanstalkd is killed -9 and restarted empty.

Run from the repository root (beanstalkd installed, Redis at 127.0.0.1:6379)::

    python -m bench.recovery_time [--jobs 1000 10000] [--interval 30]

A RecoverySweeper with default settings (30 s interval, 30 s grace, 0.25 s check) runs beside
a queue on RedisStore; N jobs wait in beanstalkd; beanstalkd is killed -9 and started empty;
the clock starts when it answers again and stops when all N are ready again (watched from a
separate client every millisecond).
"""

from __future__ import annotations

import argparse
import time
import uuid

import greenstalk

from bench.scale import REDIS_URL, drop_prefix
from kqueue import KQueue, RecoverySweeper
from kqueue.stores.redis import RedisStore
from tests.servers import BeanstalkdProcess, running_beanstalkd


def ready(server: BeanstalkdProcess) -> int | None:
    """Ready jobs in the server, or None while it does not answer."""
    try:
        with greenstalk.Client(server.address) as client:
            return int(client.stats()["current-jobs-ready"])
    except (OSError, greenstalk.Error):
        return None


def seconds_to_recover(jobs: int, interval: float) -> float:
    prefix = f"kqbench:{uuid.uuid4().hex[:8]}:"
    try:
        with running_beanstalkd() as server:
            store = RedisStore(REDIS_URL, prefix=prefix)
            with KQueue(host=server.host, port=server.port, bulk_store=store) as queue:
                queue.add_jobs("lost", [{"n": n} for n in range(jobs)])
                with RecoverySweeper(queue, interval=interval) as sweeper:
                    while sweeper.passes < 1:
                        time.sleep(0.01)
                    server.kill()
                    server.start()
                    while ready(server) is None:
                        time.sleep(0.001)
                    answered = time.monotonic()
                    while (ready(server) or 0) < jobs:
                        time.sleep(0.001)
                    return time.monotonic() - answered
    finally:
        drop_prefix(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, nargs="*", default=[1000, 10_000])
    parser.add_argument("--interval", type=float, default=30.0)
    args = parser.parse_args()
    for jobs in args.jobs:
        took = seconds_to_recover(jobs, args.interval)
        print(f"{jobs:>7,} lost jobs ready again {took:.2f} s after beanstalkd answered again")


if __name__ == "__main__":
    main()
