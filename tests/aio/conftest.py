"""The asyncio tests: every test here runs on the real beanstalkd and on fakebeanstalk."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import BROKERS, either_broker
from tests.servers import BeanstalkdProcess


@pytest.fixture(params=BROKERS)
def beanstalkd(request: pytest.FixtureRequest) -> Iterator[BeanstalkdProcess]:
    """Every test here runs on the real beanstalkd and on fakebeanstalk."""
    yield from either_broker(request)
