"""Queues over every bulk store, on a real beanstalkd."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import greenstalk
import pytest

from kqueue import KQueue
from kqueue.stores import Store
from tests.contract.conftest import STORE_KINDS, open_test_store
from tests.servers import BeanstalkdProcess


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh store of each kind, shared by the test's queues, closed after the test."""
    instance = open_test_store(request.param, request)
    yield instance
    instance.close()


@pytest.fixture
def make_queue(beanstalkd: BeanstalkdProcess, store: Store) -> Iterator[Callable[..., KQueue]]:
    """Build KQueues sharing the test's store and beanstalkd; closed after the test."""
    queues: list[KQueue] = []

    def make(**kwargs: object) -> KQueue:
        options: dict[str, object] = {"bulk_store": store} | kwargs
        queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, **options)  # type: ignore[arg-type]
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.close()


@pytest.fixture
def queue(make_queue: Callable[..., KQueue]) -> KQueue:
    """A KQueue writing through the test's store."""
    return make_queue()


@pytest.fixture
def client(beanstalkd: BeanstalkdProcess) -> Iterator[greenstalk.Client[bytes]]:
    """An independent beanstalkd client to look at the server's state."""
    with greenstalk.Client(beanstalkd.address, encoding=None) as conn:
        yield conn
