"""Queues over every bulk store on both brokers (the fixtures of tests/integration)."""

from collections.abc import Iterator

import pytest

from tests.conftest import BROKERS, either_broker
from tests.integration.conftest import queue_defaults, store
from tests.servers import BeanstalkdProcess

__all__ = ["queue_defaults", "store"]


@pytest.fixture(params=BROKERS)
def beanstalkd(request: pytest.FixtureRequest) -> Iterator[BeanstalkdProcess]:
    """Every test here runs on the real beanstalkd and on fakebeanstalk."""
    yield from either_broker(request)
