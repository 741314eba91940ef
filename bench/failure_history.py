"""What keeping each failed attempt costs: ``record_failure`` (the attempt and one entry of
the history) against ``record_attempt`` (the attempt alone, as before histories), per store,
measured back to back in one run; and building the entry from an exception.

Run from the repository root (Redis at 127.0.0.1:6379, PostgreSQL and MariaDB as in tests)::

    python -m bench.failure_history [--rounds 2000] [--stores memory redis sqlite postgres mysql]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable

from bench.scale import REDIS_URL, drop_prefix
from kqueue.results import attempt_failure
from kqueue.stores.base import Store, new_record


def _open(kind: str, prefix: str) -> Store:
    from kqueue.stores import MemoryStore
    from kqueue.stores.redis import RedisStore
    from kqueue.stores.sql import SQLStore

    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        return RedisStore(REDIS_URL, prefix=prefix)
    urls = {
        "sqlite": f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3",
        "postgres": os.environ.get(
            "KQUEUE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test"
        ),
        "mysql": os.environ.get("KQUEUE_TEST_MYSQL_URL", "mysql://root@127.0.0.1/test"),
    }
    return SQLStore(urls[kind], table_prefix=prefix.replace(":", "_"))


def _per_call(rounds: int, call: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for n in range(rounds):
        call(n)
    return (time.perf_counter() - started) / rounds


def measure(kind: str, rounds: int) -> tuple[float, float]:
    """Seconds per record_attempt and per record_failure on one record of a store."""
    prefix = f"kqbench{uuid.uuid4().hex[:8]}:"
    store = _open(kind, prefix)
    try:
        store.put(
            new_record(prefix + "k", "t", b"{}", "json", priority=1, delay=0, ttr=60, now=1.0)
        )
        try:
            raise ValueError("upstream said no")
        except ValueError as exc:
            failure = attempt_failure(exc, 1)
        key = prefix + "k"
        error = "ValueError: upstream said no"
        attempt = _per_call(rounds, lambda n: store.record_attempt(
            key, attempts=n, last_error=error, state="enqueued", now=2.0))  # fmt: skip
        with_history = _per_call(rounds, lambda n: store.record_failure(
            key, failure, attempts=n, last_error=error, state="enqueued", now=2.0))  # fmt: skip
        return attempt, with_history
    finally:
        _drop(kind, store, prefix)


def _drop(kind: str, store: Store, prefix: str) -> None:
    """Leave nothing behind: the Redis keys, or the SQL tables, of the benchmark's store."""
    from kqueue.stores.sql import SQLStore

    if isinstance(store, SQLStore):
        store.tables.metadata.drop_all(store.engine)
    store.close()
    if kind == "redis":
        drop_prefix(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument(
        "--stores", nargs="*", default=["memory", "redis", "sqlite", "postgres", "mysql"]
    )
    args = parser.parse_args()
    try:
        raise ValueError("upstream said no")
    except ValueError as exc:
        error = exc
    build = _per_call(args.rounds, lambda n: attempt_failure(error, n))
    print(f"building an AttemptFailure from an exception: {build * 1e6:.1f} us")
    print(f"{'store':<10} {'record_attempt':>16} {'record_failure':>16} {'ratio':>7}")
    for kind in args.stores:
        attempt, with_history = measure(kind, args.rounds)
        ratio = with_history / attempt
        print(f"{kind:<10} {attempt * 1e6:>13.1f} us {with_history * 1e6:>13.1f} us {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
