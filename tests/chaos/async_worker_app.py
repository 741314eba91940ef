"""An asyncio worker process for the chaos tests (the async twin of worker_app).

    python -m tests.chaos.async_worker_app HOST PORT STORE_URL STORE_PREFIX COMPLETIONS_KEY \
        [SLEEP_S]

Each ``async def`` handler run appends the job's payload to the Redis list COMPLETIONS_KEY
(through redis.asyncio), up to CONCURRENCY jobs at once; SIGTERM stops it gracefully.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import redis.asyncio

from kqueue import Job
from kqueue.aio import AsyncKQueue
from kqueue.stores.redis import RedisStore

CONCURRENCY = 20


async def main() -> None:
    host, port, store_url, prefix, completions = sys.argv[1:6]
    sleep_s = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    recorder = redis.asyncio.Redis.from_url(store_url)
    store = RedisStore(store_url, prefix=prefix)
    queue = AsyncKQueue(host=host, port=int(port), bulk_store=store, reconnect_delay=(0.02, 0.2))

    async def handle(job: Job) -> None:
        if sleep_s:
            await asyncio.sleep(sleep_s)
        await recorder.rpush(completions, str(job.data))

    queue.add_handler("chaos", handle)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, queue.stop)
    print("ready", flush=True)
    await queue.run_jobs(concurrency=CONCURRENCY)
    await queue.close()
    await recorder.aclose()
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
