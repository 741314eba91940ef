"""End-to-end throughput: add N jobs, run them, delete them; kqueue per store vs greenstalk.

Run from the repository root (services as in ci/test.sh)::

    python -m bench.end_to_end [--jobs 5000] [--stores inline,redis,sqlite,postgres]

Every figure comes from the same run on one fresh real beanstalkd: the baseline is plain
greenstalk doing put, then reserve + delete, one command per round trip, with no store.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable

import greenstalk

from kqueue import KQueue
from tests.servers import BeanstalkdProcess, running_beanstalkd

STORE_URLS: dict[str, Callable[[str], str | None]] = {
    "inline": lambda tmp: None,
    "redis": lambda tmp: "redis://127.0.0.1:6379/0",
    "sqlite": lambda tmp: f"sqlite:///{tmp}/bench.sqlite3",
    "postgres": lambda tmp: "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mysql": lambda tmp: "mysql+pymysql://root@127.0.0.1:3306/test",
}
PAYLOAD = {"user": 12345, "action": "send-welcome-email", "tags": ["a", "b", "c"]}


def greenstalk_cycle(server: BeanstalkdProcess, jobs: int) -> float:
    """Seconds for jobs x (put), then jobs x (reserve + delete)."""
    with greenstalk.Client(server.address, use="gs", watch="gs") as client:
        body = str(PAYLOAD)
        started = time.perf_counter()
        for _ in range(jobs):
            client.put(body)
        for _ in range(jobs):
            client.delete(client.reserve())
        return time.perf_counter() - started


def kqueue_cycle(server: BeanstalkdProcess, jobs: int, store_url: str | None) -> float:
    """Seconds for jobs x add_job, then run_jobs until all ran (handler does nothing)."""
    job_type = f"bench-{uuid.uuid4().hex[:8]}"
    with KQueue(host=server.host, port=server.port, bulk_store=store_url) as queue:
        queue.add_handler(job_type, lambda job: None)
        started = time.perf_counter()
        for _ in range(jobs):
            queue.add_job(job_type, PAYLOAD)
        ran = queue.run_jobs(count_limit=jobs, time_limit_ms=0)
        elapsed = time.perf_counter() - started
        assert ran == jobs, f"ran {ran} of {jobs}"
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--stores", default="inline,redis,sqlite,postgres")
    args = parser.parse_args()
    with running_beanstalkd() as server, tempfile.TemporaryDirectory() as tmp:
        base = args.jobs / greenstalk_cycle(server, args.jobs)
        print(f"{'greenstalk (no store)':24} {base:9.0f} jobs/s  1.00x")
        for name in args.stores.split(","):
            rate = args.jobs / kqueue_cycle(server, args.jobs, STORE_URLS[name](tmp))
            print(f"{'kqueue ' + name:24} {rate:9.0f} jobs/s  {rate / base:.2f}x")


if __name__ == "__main__":
    main()
