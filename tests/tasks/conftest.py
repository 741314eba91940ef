"""Typed tasks, results and failure histories: every test runs on the real beanstalkd and on
fakebeanstalk, with a store (the memory store unless a test picks another)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kqueue import KQueue
from kqueue.stores import MemoryStore
from tests.conftest import BROKERS, either_broker
from tests.servers import BeanstalkdProcess


@pytest.fixture(params=BROKERS)
def beanstalkd(request: pytest.FixtureRequest) -> Iterator[BeanstalkdProcess]:
    """The real beanstalkd and fakebeanstalk in turn."""
    yield from either_broker(request)


@pytest.fixture
def queue(beanstalkd: BeanstalkdProcess) -> Iterator[KQueue]:
    """A queue with a memory store, retrying at once (no backoff) up to three attempts."""
    from kqueue import RetryPolicy

    policy = RetryPolicy(max_attempts=3, base_delay=0, max_delay=0, jitter=False)
    with KQueue(
        host=beanstalkd.host, port=beanstalkd.port, bulk_store=MemoryStore(), retry=policy
    ) as queue:
        yield queue
