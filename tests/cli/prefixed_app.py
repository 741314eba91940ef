"""An application with its own key prefix, tube prefix and broker, as in the field:
``kqueue stats tests.cli.prefixed_app:make_queue`` must see exactly what it sees.

Where it runs comes from the environment the test sets (``KQ_TEST_BEANSTALKD``,
``KQ_TEST_REDIS_URL``, ``KQ_TEST_REDIS_PREFIX``).
"""

from __future__ import annotations

import os

from kqueue import Job, KQueue, RetryPolicy
from kqueue.stores.redis import RedisStore

TUBE_PREFIX = "myapp-"


def deliver(job: Job) -> None:
    """Does nothing: the tests look at where jobs are, not at what they do."""


def make_queue() -> KQueue:
    """The application's queue (a factory, so each command gets a fresh one)."""
    host, port = os.environ["KQ_TEST_BEANSTALKD"].split(":")
    store = RedisStore(os.environ["KQ_TEST_REDIS_URL"], prefix=os.environ["KQ_TEST_REDIS_PREFIX"])
    queue = KQueue(
        host=host,
        port=int(port),
        bulk_store=store,
        tube_prefix=TUBE_PREFIX,
        retry=RetryPolicy(max_attempts=1),
        connect_timeout=1.0,
    )
    queue.add_handler("email.send", deliver)
    return queue
