"""What a replicated Redis store costs an add_job: the master directly, through Sentinel, and
through Sentinel with the replication wait (``replicas=1``).

Run from the repository root (redis-server and beanstalkd installed)::

    python -m bench.replicated_store [--adds 2000] [--rounds 5]

One run starts a Sentinel set (a master, a replica, three Sentinels) and a beanstalkd on free
loopback ports, then times ``--adds`` sequential add_job calls per store in alternating rounds
(the same machine load for each) and prints each one's median rate and p50 / p99 latency,
with the ratios against the master reached directly.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from kqueue import KQueue
from kqueue.stores.redis import RedisStore
from tests.redis_servers import running_sentinel_set
from tests.servers import running_beanstalkd

PAYLOAD = {"user": 12345, "action": "send-welcome-email"}


def _round(queue: KQueue, adds: int) -> tuple[float, list[float]]:
    latencies = []
    started = time.perf_counter()
    for _ in range(adds):
        t0 = time.perf_counter()
        queue.add_job("bench", PAYLOAD)
        latencies.append(time.perf_counter() - t0)
    return adds / (time.perf_counter() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with running_sentinel_set() as sentinels, running_beanstalkd() as beanstalkd:
        prefix = f"kqbench:{uuid.uuid4().hex[:8]}:"
        master = sentinels.master_port()
        stores = {
            "master directly": RedisStore(f"redis://127.0.0.1:{master}/0", prefix=prefix),
            "Sentinel": RedisStore(sentinels.url(), prefix=prefix),
            "Sentinel, replicas=1": RedisStore(sentinels.url(), prefix=prefix, replicas=1),
        }
        queues = {
            name: KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store)
            for name, store in stores.items()
        }
        rates: dict[str, list[float]] = {name: [] for name in queues}
        latencies: dict[str, list[float]] = {name: [] for name in queues}
        for queue in queues.values():
            _round(queue, 100)  # warm up: connections, scripts
        for _ in range(args.rounds):
            for name, queue in queues.items():
                rate, took = _round(queue, args.adds)
                rates[name].append(rate)
                latencies[name] += took
        base = statistics.median(rates["master directly"])
        print(f"{args.adds} sequential add_job x {args.rounds} rounds, one process:")
        for name in queues:
            rate = statistics.median(rates[name])
            ordered = sorted(latencies[name])
            p50 = ordered[len(ordered) // 2] * 1e6
            p99 = ordered[int(len(ordered) * 0.99)] * 1e6
            print(
                f"  {name:22} {rate:8.0f} adds/s  ({rate / base:4.2f}x)  "
                f"p50 {p50:6.0f} us  p99 {p99:6.0f} us"
            )
        for queue in queues.values():
            queue.close()
        for store in stores.values():
            store.close()


if __name__ == "__main__":
    main()
