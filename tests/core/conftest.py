"""Helpers for the KQueue core tests (the queue fixtures live in tests/conftest.py); every
test here runs on the real beanstalkd and on fakebeanstalk."""

from __future__ import annotations

from collections.abc import Iterator

import greenstalk
import pytest

from tests.conftest import BROKERS, either_broker
from tests.servers import BeanstalkdProcess


def tube_stats(client: greenstalk.Client[bytes], tube: str) -> dict[str, int]:
    """stats-tube as ints, or all zeros when the tube does not exist."""
    try:
        return {k: v for k, v in client.stats_tube(tube).items() if isinstance(v, int)}
    except greenstalk.NotFoundError:
        return {"current-jobs-ready": 0, "current-jobs-delayed": 0, "total-jobs": 0}


@pytest.fixture(params=BROKERS)
def beanstalkd(request: pytest.FixtureRequest) -> Iterator[BeanstalkdProcess]:
    """Every test here runs on the real beanstalkd and on fakebeanstalk."""
    yield from either_broker(request)
