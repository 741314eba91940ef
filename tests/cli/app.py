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


def flaky(job: Job) -> None:
    """Fails its first attempt, then records the job."""
    if job.attempts == 1:
        raise ConnectionError("flaky upstream")
    record(job)


retrying = KQueue(retry=RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=False))
retrying.add_handler("flaky", flaky)

not_a_queue = {"looks": "like nothing"}


def make_queue() -> KQueue:
    """A factory: ``kqueue worker tests.cli.app:make_queue`` calls it."""
    fresh = KQueue()
    fresh.add_handler("record", record)
    return fresh


scheduled = KQueue(retry=RetryPolicy(max_attempts=1))
scheduled.add_handler("record", record)
scheduled.add_periodic("record", "* * * * *", payload={"periodic": True})
