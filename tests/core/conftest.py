"""Fixtures for the KQueue core tests: queues on a real beanstalkd, an independent client."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import greenstalk
import pytest

from kqueue import KQueue
from tests.servers import BeanstalkdProcess


@pytest.fixture
def make_queue(beanstalkd: BeanstalkdProcess) -> Iterator[Callable[..., KQueue]]:
    """Build KQueues on the test's beanstalkd; all are closed after the test."""
    queues: list[KQueue] = []

    def make(**kwargs: object) -> KQueue:
        queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, **kwargs)  # type: ignore[arg-type]
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.close()


@pytest.fixture
def queue(make_queue: Callable[..., KQueue]) -> KQueue:
    """One inline (store-less) KQueue on the test's beanstalkd."""
    return make_queue()


@pytest.fixture
def client(beanstalkd: BeanstalkdProcess) -> Iterator[greenstalk.Client[bytes]]:
    """An independent beanstalkd client (greenstalk) to look at the server's state."""
    with greenstalk.Client(beanstalkd.address, encoding=None) as conn:
        yield conn


def tube_stats(client: greenstalk.Client[bytes], tube: str) -> dict[str, int]:
    """stats-tube as ints, or all zeros when the tube does not exist."""
    try:
        return {k: v for k, v in client.stats_tube(tube).items() if isinstance(v, int)}
    except greenstalk.NotFoundError:
        return {"current-jobs-ready": 0, "current-jobs-delayed": 0, "total-jobs": 0}
