"""Queues over every bulk store, on the real beanstalkd and on fakebeanstalk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kqueue.stores import Store
from tests.conftest import BROKERS, either_broker
from tests.contract.conftest import STORE_KINDS, open_test_store
from tests.servers import BeanstalkdProcess


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh store of each kind, shared by the test's queues, closed after the test."""
    instance = open_test_store(request.param, request)
    yield instance
    instance.close()


@pytest.fixture
def queue_defaults(store: Store) -> dict[str, Any]:
    """Every queue of these tests writes through the test's store."""
    return {"bulk_store": store}


@pytest.fixture(params=BROKERS)
def beanstalkd(request: pytest.FixtureRequest) -> Iterator[BeanstalkdProcess]:
    """Every test here runs on the real beanstalkd and on fakebeanstalk."""
    yield from either_broker(request)
