"""An application whose ``die`` jobs kill their worker process (for the supervisor tests):
``kqueue worker tests.cli.dying_app:queue --processes 2``."""

from __future__ import annotations

import os

from kqueue import Job, KQueue, RetryPolicy
from tests.cli.app import record


def die(job: Job) -> None:
    os._exit(9)  # the worker process dies with the job reserved


queue = KQueue(retry=RetryPolicy(max_attempts=1))
queue.add_handler("record", record)
queue.add_handler("die", die)
