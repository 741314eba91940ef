"""Fixtures of the bonded-queue tests: three brokers (real beanstalkd processes, or three
fakebeanstalks in this process) and queues over all of them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kqueue import KQueue
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.serialization import decode_body
from tests.conftest import BROKERS, _spawn
from tests.servers import BeanstalkdProcess, FakeBroker


@pytest.fixture(params=BROKERS)
def trio(request: pytest.FixtureRequest) -> Iterator[list[BeanstalkdProcess]]:
    """Three brokers of one kind, started."""
    with contextlib.ExitStack() as stack:
        brokers: list[BeanstalkdProcess] = []
        for _ in range(3):
            if request.param == "real":
                brokers.append(stack.enter_context(contextlib.contextmanager(_spawn)()))
            else:
                fake = FakeBroker()
                fake.start()
                stack.callback(fake.stop)
                brokers.append(fake)  # type: ignore[arg-type]
        yield brokers


def addresses(brokers: list[BeanstalkdProcess]) -> list[str]:
    return [f"{broker.host}:{broker.port}" for broker in brokers]


@pytest.fixture
def make_bonded(trio: list[BeanstalkdProcess]) -> Iterator[Callable[..., KQueue]]:
    """KQueues over the three brokers of ``trio``; all closed after the test."""
    queues: list[KQueue] = []

    def make(**kwargs: Any) -> KQueue:
        queue = KQueue(servers=addresses(trio), **kwargs)
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.close()


def ready_on(broker: BeanstalkdProcess, tube: str) -> int:
    """How many jobs of ``tube`` are ready on one broker."""
    conn = BeanstalkConnection(broker.host, broker.port, command_timeout=5)
    try:
        stats = conn.stats_tube(tube)
        return 0 if stats is None else stats["current-jobs-ready"]
    finally:
        conn.close()


def id_of(broker: BeanstalkdProcess) -> str:
    """The broker's ``stats`` id."""
    conn = BeanstalkConnection(broker.host, broker.port, command_timeout=5)
    try:
        return conn.server_id()
    finally:
        conn.close()


def key_of(broker: BeanstalkdProcess, job_id: int) -> str | None:
    """The record key in the body of a job on one broker (None: no such job)."""
    conn = BeanstalkConnection(broker.host, broker.port, command_timeout=5)
    try:
        job = conn.peek(job_id)
        body = None if job is None else decode_body(job.body)
        return None if body is None else body.key
    finally:
        conn.close()
