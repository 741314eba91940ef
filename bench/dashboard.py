"""Dashboard pages with real volumes (issue 18: each page within 200 ms with 100 job types
and 100,000 stored records), measured in one run.

Run from the repository root (beanstalkd installed; Redis at 127.0.0.1:6379 for --store
redis)::

    python -m bench.dashboard [--store sqlite redis] [--types 100] [--records 100000]

For each store: a fresh beanstalkd, ``--records`` jobs spread evenly over ``--types`` job types
(``add_jobs``, batches of 1000), then 200 of one type buried by a failing handler, 1 type
suspended. Each page is requested ``--repeat`` times in process (Starlette's TestClient: the
whole ASGI application, templates included, no network) after one warm-up request; printed:
median and worst time, the worst as a share of the 200 ms target, and the median as a ratio to
the bare view functions the page renders: what the page adds. The overview shows 25 job types
a page; the last row sets beside it ``queue.stats()`` counting all of them (what ``kqueue
stats`` does): the cost of an overview without pages.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from kqueue import Job, KQueue, RetryPolicy
from kqueue.dashboard import create_app
from kqueue.dashboard.views import dead_letters, find_job, overview, type_row
from tests.servers import running_beanstalkd

REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET_MS = 200.0
BURIED = 200


def fail(job: Job) -> None:
    raise RuntimeError("bench: buried on purpose")


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def fill(queue: KQueue, types: int, records: int) -> tuple[str, str]:
    """Jobs over ``types`` job types, some buried; the buried type and one record key."""
    per_type = records // types
    payloads = [{"user": n, "action": "send-welcome-email"} for n in range(per_type)]
    for t in range(types):
        for start in range(0, per_type, 1000):
            queue.add_jobs(f"type{t:03d}", payloads[start : start + 1000])
    buried_type = "type007"
    queue.add_handler(buried_type, fail)
    queue.run_jobs(count_limit=BURIED, time_limit_ms=5000, job_types=[buried_type])
    queue.remove_handler(buried_type)
    queue.suspend("type042")
    page = dead_letters(queue, buried_type, None, 1)
    assert page.jobs and page.jobs[0].key is not None, "nothing buried"
    return buried_type, page.jobs[0].key


Row = tuple[str, list[float], float]


def measure(store: str, types: int, records: int, repeat: int) -> list[Row]:
    """Each page's times and the median time of the API calls it renders."""
    with running_beanstalkd() as server, tempfile.TemporaryDirectory() as tmp:
        url = REDIS_URL if store == "redis" else f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        prefix = f"kqbench:{uuid.uuid4().hex[:8]}:" if store == "redis" else None
        bulk = f"{url}?prefix={prefix}" if prefix else url
        queue = KQueue(
            host=server.host, port=server.port, bulk_store=bulk, retry=RetryPolicy(max_attempts=1)
        )
        try:
            started = time.perf_counter()
            buried_type, key = fill(queue, types, records)
            print(f"  {store}: {records} records over {types} types in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            client = TestClient(create_app(queue, refresh=0))
            return [
                (name, timed(lambda path=path: _ok(client.get(path)), repeat),  # type: ignore[misc]
                 statistics.median(timed(api, repeat)))
                for name, path, api in _pages(queue, buried_type, key)
            ] + [("unpaged: queue.stats()", timed(queue.stats, repeat), 0.0)]  # fmt: skip
        finally:
            _clear(queue, prefix)
            queue.close()


def _pages(queue: KQueue, buried_type: str, key: str) -> list[tuple[str, str, Callable[[], Any]]]:
    """Each page: its name, its path, and the view functions it renders."""

    def type_page(job_type: str) -> Callable[[], Any]:
        return lambda: (type_row(queue, job_type), dead_letters(queue, job_type, None, 50))

    return [
        ("overview, page 1", "/", lambda: overview(queue, 1)),
        ("overview, page 4", "/?page=4", lambda: overview(queue, 4)),
        ("overview fragment", "/fragment/overview", lambda: overview(queue, 1)),
        ("type (1000 records)", "/type?name=type001", type_page("type001")),
        (f"dead letters ({BURIED} buried)", f"/type?name={buried_type}", type_page(buried_type)),
        ("job by key", f"/job?target={key}", lambda: find_job(queue, key)),
        ("purge confirmation", "/type/purge?name=type001", lambda: type_row(queue, "type001")),
    ]


def _ok(response: Any) -> None:
    assert response.status_code == 200, response.text[:500]


def _clear(queue: KQueue, prefix: str | None) -> None:
    if prefix is None:
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=10_000))
    for start in range(0, len(keys), 10_000):
        client.delete(*keys[start : start + 10_000])
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", nargs="*", default=["sqlite", "redis"])
    parser.add_argument("--types", type=int, default=100)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for store in args.store:
        rows = measure(store, args.types, args.records, args.repeat)
        print(f"\n{store}, {args.types} job types, {args.records} records "
              f"(ms, {args.repeat} requests each)")  # fmt: skip
        print(f"  {'page':36} {'median':>8} {'worst':>8} {'worst/200ms':>12} {'page/API':>9}")
        for name, times, api in rows:
            median, worst = statistics.median(times), max(times)
            ratio = f"{median / api:9.2f}" if api else f"{'-':>9}"
            print(f"  {name:36} {median:8.1f} {worst:8.1f} {worst / TARGET_MS:12.2f} {ratio}")


if __name__ == "__main__":
    main()
