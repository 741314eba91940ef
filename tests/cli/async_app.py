"""An asyncio application for the command-line tests: ``kqueue worker tests.cli.async_app:queue``.

Its ``async def`` handlers append each job's payload to the file named by ``KQ_TEST_OUT``.
"""

from __future__ import annotations

import asyncio
import json
import os

from kqueue import Job, RetryPolicy
from kqueue.aio import AsyncKQueue


def _write(line: object) -> None:
    with open(os.environ["KQ_TEST_OUT"], "a") as out:
        out.write(json.dumps(line) + "\n")


async def record(job: Job) -> None:
    _write(job.data)


async def slow(job: Job) -> None:
    _write({"started": job.data})
    await asyncio.sleep(float(job.data["seconds"]))
    _write(job.data)


queue = AsyncKQueue(retry=RetryPolicy(max_attempts=1))
queue.add_handler("record", record)
queue.add_handler("slow", slow)
