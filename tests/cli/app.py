"""An application for the command-line tests: ``kqueue worker tests.cli.app:queue``.

Its handlers append each job's payload to the file named by ``KQ_TEST_OUT``.
"""

from __future__ import annotations

import json
import os
import time

from kqueue import Job, KQueue, RetryPolicy


def record(job: Job) -> None:
    with open(os.environ["KQ_TEST_OUT"], "a") as out:
        out.write(json.dumps(job.data) + "\n")


def slow(job: Job) -> None:
    with open(os.environ["KQ_TEST_OUT"], "a") as out:
        out.write(json.dumps({"started": job.data}) + "\n")
    time.sleep(float(job.data["seconds"]))
    record(job)


def failing(job: Job) -> None:
    raise RuntimeError(f"cannot handle {job.data}")


queue = KQueue(retry=RetryPolicy(max_attempts=1))
queue.add_handler("record", record)
queue.add_handler("slow", slow)
queue.add_handler("failing", failing)

not_a_queue = {"looks": "like nothing"}


def make_queue() -> KQueue:
    """A factory: ``kqueue worker tests.cli.app:make_queue`` calls it."""
    fresh = KQueue()
    fresh.add_handler("record", record)
    return fresh
