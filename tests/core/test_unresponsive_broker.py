"""A broker that neither answers nor closes (SIGSTOP here; dropped packets in real life):
producers spend one timeout per outage, not one per add, and a waiting worker notices."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator

import greenstalk
import pytest

from kqueue import NOT_SCHEDULED, BrokerConnectionError, BrokerError, KQueue
from kqueue.stores import MemoryStore
from tests.servers import BeanstalkdProcess, wait_for


@pytest.fixture
def frozen(real_beanstalkd: BeanstalkdProcess) -> Iterator[BeanstalkdProcess]:
    """A real beanstalkd, thawed again after the test whatever happened."""
    yield real_beanstalkd
    real_beanstalkd.signal(signal.SIGCONT)


def test_adds_to_a_frozen_broker_cost_one_timeout_per_outage(frozen: BeanstalkdProcess) -> None:
    store = MemoryStore()
    queue = KQueue(host=frozen.host, port=frozen.port, bulk_store=store, command_timeout=3.0)
    queue.add_job("f", "warm")  # connected, then the broker freezes
    frozen.signal(signal.SIGSTOP)
    assert queue.add_job("f", "first") == NOT_SCHEDULED  # waits its one timeout
    started = time.monotonic()
    ids = [queue.add_job("f", n) for n in range(20)]
    elapsed = time.monotonic() - started
    assert ids == [NOT_SCHEDULED] * 20 and store.count() == 22  # accepted, durable
    assert elapsed < 3.0, f"20 adds took {elapsed:.2f} s: more than the one timeout of 3 s"
    frozen.signal(signal.SIGCONT)
    assert queue.producer.health.wait_until_up(10)
    assert queue.sweep(grace=0).requeued == 21
    seen: list[object] = []
    queue.add_handler("f", lambda job: seen.append(job.data))
    queue.run_jobs(count_limit=22, time_limit_ms=10_000)
    assert sorted(map(str, seen)) == sorted(["warm", "first", *map(str, range(20))])
    queue.close()


def test_inline_adds_to_a_broker_marked_down_fail_at_once(frozen: BeanstalkdProcess) -> None:
    queue = KQueue(host=frozen.host, port=frozen.port, command_timeout=3.0)
    queue.add_job("i", "warm")
    frozen.signal(signal.SIGSTOP)
    with pytest.raises(BrokerError):
        queue.add_job("i", "lost?")  # nothing but beanstalkd could hold it: refused
    started = time.monotonic()
    with pytest.raises(BrokerConnectionError, match="marked down"):
        queue.add_job("i", "again")
    assert time.monotonic() - started < 3.0  # less than the one timeout it already spent
    queue.close()


def test_a_worker_waiting_forever_notices_a_frozen_broker(
    frozen: BeanstalkdProcess, caplog: pytest.LogCaptureFixture
) -> None:
    queue = KQueue(
        host=frozen.host,
        port=frozen.port,
        heartbeat=1,
        command_timeout=1.0,
        reconnect_delay=(0.1, 0.2),
    )
    queue.add_handler("w", lambda job: None)
    caplog.set_level(logging.WARNING, logger="kqueue")
    worker = threading.Thread(target=queue.run_jobs)
    worker.start()
    try:
        with greenstalk.Client(frozen.address) as client:
            waiting = wait_for(lambda: client.stats()["current-waiting"] == 1, timeout=10)
        assert waiting, "the worker never blocked in reserve"
        frozen.signal(signal.SIGSTOP)
        noticed = wait_for(lambda: "beanstalkd failed" in caplog.text, timeout=30)
        assert noticed, "the worker never noticed that the broker stopped answering"
    finally:
        frozen.signal(signal.SIGCONT)
        queue.stop()
        worker.join(30)
        queue.close()
    assert not worker.is_alive()
