"""What a unique key costs a store write (not a test).

Run: .venv/bin/python bench/unique_adds.py [--redis URL] [--sql URL ...] [--batch N]

For each store, in one run: the best of five ``put_many`` of a batch of new records against
the best of five ``put_unique`` of a batch whose every record claims a key of its own (the
worst case: every key looked up, every claim written), and their ratio. Adds without a
unique key never take the unique path, so their cost is the put_many column.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable

from kqueue.stores import Store
from kqueue.stores.base import JobRecord, UniqueClaim, new_record
from kqueue.stores.redis import RedisStore
from kqueue.stores.sql import SQLStore


def _records(count: int) -> list[JobRecord]:
    now = time.time()
    return [
        new_record(
            uuid.uuid4().hex, "bench", b"x" * 100, "json", priority=1, delay=0, ttr=30, now=now
        )
        for _ in range(count)
    ]


def _best(write: Callable[[list[JobRecord]], object], count: int) -> float:
    times = []
    for _ in range(5):
        batch = _records(count)  # made before the clock starts
        started = time.perf_counter()
        write(batch)
        times.append(time.perf_counter() - started)
    return min(times)


def measure(name: str, store: Store, count: int) -> None:
    """Print one store's row."""
    store.count()  # connected, schema made
    plain = _best(store.put_many, count)
    unique = _best(
        lambda batch: store.put_unique(batch, [UniqueClaim(r.key) for r in batch], now=time.time()),
        count,
    )
    print(
        f"{name:>10}: put_many {plain * 1000:7.1f} ms  put_unique {unique * 1000:7.1f} ms  "
        f"ratio {unique / plain:.2f}  ({count} records)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sql", action="append", default=[], help="SQL URLs besides SQLite")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    prefix = f"kqbench:{uuid.uuid4().hex[:8]}:"
    redis = RedisStore(args.redis, prefix=prefix)
    try:
        measure("redis", redis, args.batch)
    finally:
        keys = list(redis.client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            redis.client.delete(*keys[start : start + 1000])
        redis.close()
    with (
        tempfile.TemporaryDirectory() as folder,
        SQLStore(f"sqlite:///{folder}/bench.sqlite3") as sqlite,
    ):
        measure("sqlite", sqlite, args.batch)
    for url in args.sql:
        with SQLStore(url, table_prefix=f"kqbench_{uuid.uuid4().hex[:8]}_") as store:
            try:
                measure(store.dialect, store, args.batch)
            finally:
                store.tables.metadata.drop_all(store.engine)  # the bench's own tables


if __name__ == "__main__":
    main()
