"""A worker process for the chaos tests: records every completion in Redis, stops on SIGTERM.

    python -m tests.chaos.worker_app HOST PORT STORE_URL STORE_PREFIX COMPLETIONS_KEY [SLEEP_S]

Each handler run appends the job's payload to the Redis list COMPLETIONS_KEY, so the test can
count lost and duplicated jobs from outside every process it kills.
"""

from __future__ import annotations

import signal
import sys
import time

import redis

from kqueue import Job, KQueue
from kqueue.stores.redis import RedisStore


def main() -> None:
    host, port, store_url, prefix, completions = sys.argv[1:6]
    sleep_s = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    recorder = redis.Redis.from_url(store_url)
    store = RedisStore(store_url, prefix=prefix)
    queue = KQueue(host=host, port=int(port), bulk_store=store, reconnect_delay=(0.02, 0.2))

    def handle(job: Job) -> None:
        if job.data == "slow":
            print("slow job started", flush=True)
            time.sleep(30)
        if sleep_s:
            time.sleep(sleep_s)
        recorder.rpush(completions, str(job.data))

    queue.add_handler("chaos", handle)
    signal.signal(signal.SIGTERM, lambda *_: queue.stop())
    print("ready", flush=True)
    queue.run_jobs()
    queue.close()
    store.close()


if __name__ == "__main__":
    main()
