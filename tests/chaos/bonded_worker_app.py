"""A worker process over several beanstalkd servers for the bonded chaos test.

    python -m tests.chaos.bonded_worker_app SERVERS STORE_URL STORE_PREFIX COMPLETIONS_KEY

SERVERS is comma-separated ``host:port``. Each handler run appends the job's payload to the
Redis list COMPLETIONS_KEY; SIGTERM stops the worker.
"""

from __future__ import annotations

import signal
import sys

import redis

from kqueue import Job, KQueue
from kqueue.stores.redis import RedisStore

WINDOW = 16
"""Jobs a worker reserves at most at once: bounds the duplicates a kill may cause."""


def main() -> None:
    servers, store_url, prefix, completions = sys.argv[1:5]
    recorder = redis.Redis.from_url(store_url)
    store = RedisStore(store_url, prefix=prefix)
    queue = KQueue(
        servers=servers.split(","),
        bulk_store=store,
        reconnect_delay=(0.02, 0.2),
        connect_timeout=0.5,
        command_timeout=2,
        heartbeat=1,
        window=WINDOW,
    )

    def handle(job: Job) -> None:
        recorder.rpush(completions, str(job.data))

    queue.add_handler("chaos", handle)
    signal.signal(signal.SIGTERM, lambda *_: queue.stop())
    print("ready", flush=True)
    queue.run_jobs()
    queue.close()
    store.close()


if __name__ == "__main__":
    main()
