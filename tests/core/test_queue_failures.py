"""Bad input and broker failures: typed errors, nothing enqueued, workers ride out restarts."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import greenstalk
import pytest

from kqueue import (
    BrokerConnectionError,
    BrokerDrainingError,
    InvalidJobTypeError,
    JobTooBigError,
    KQueue,
    KQueueError,
    PayloadError,
    ValidationError,
)
from tests.servers import (
    BeanstalkdProcess,
    beanstalkd_binary,
    free_port,
    missing_service,
    wait_for,
)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"job_type": "bad name"}, InvalidJobTypeError),
        ({"job_type": "ünï"}, InvalidJobTypeError),
        ({"job_type": "x" * 198}, InvalidJobTypeError),
        ({"priority": -1}, ValidationError),
        ({"priority": 2**32}, ValidationError),
        ({"priority": "high"}, ValidationError),
        ({"delay": -1}, ValidationError),
        ({"delay": math.nan}, ValidationError),
        ({"ttr": 0}, ValidationError),
        ({"ttr": -5}, ValidationError),
        ({"payload": object()}, PayloadError),
        ({"payload": {"n": math.inf}}, PayloadError),
    ],
)
def test_bad_input_raises_a_typed_error_and_enqueues_nothing(
    queue: KQueue,
    client: greenstalk.Client[bytes],
    kwargs: dict[str, object],
    error: type[Exception],
) -> None:
    args: dict[str, object] = {"job_type": "ok", "payload": {"a": 1}} | kwargs
    job_type, payload = args.pop("job_type"), args.pop("payload")
    with pytest.raises(error):
        queue.add_job(job_type, payload, **args)  # type: ignore[arg-type]
    assert client.stats()["total-jobs"] == 0
    assert client.tubes() == ["default"]


def test_unreachable_beanstalkd_names_its_address() -> None:
    port = free_port()
    queue = KQueue(port=port, connect_timeout=1)
    with pytest.raises(BrokerConnectionError, match=f"127.0.0.1:{port}"):
        queue.open()
    with pytest.raises(KQueueError):
        queue.add_job("x", 1)


def test_inline_payload_over_max_job_size_is_refused_clearly(tmp_path: Path) -> None:
    binary = beanstalkd_binary()
    if binary is None:
        missing_service("beanstalkd binary not found (apt-get install beanstalkd)")
        raise AssertionError("unreachable")
    server = BeanstalkdProcess(binary, max_job_size=200)
    server.start()
    try:
        queue = KQueue(host=server.host, port=server.port)
        with pytest.raises(JobTooBigError, match="max job size of 200"):
            queue.add_job("big", "x" * 500)
        assert queue.add_job("big", "small") > 0
        with greenstalk.Client(server.address) as client:
            assert client.stats()["total-jobs"] == 1
        queue.close()
    finally:
        server.stop()


def test_draining_server_refuses_new_jobs_with_a_typed_error(
    queue: KQueue, beanstalkd: BeanstalkdProcess
) -> None:
    queue.open()
    beanstalkd.signal(signal.SIGUSR1)  # a signal: handled by the server soon, not at once
    assert wait_for(lambda: queue.stats().server.get("draining") == "true", timeout=10)
    with pytest.raises(BrokerDrainingError):
        queue.add_job("d", 1)


def test_producer_reconnects_after_a_broker_restart(
    queue: KQueue, beanstalkd: BeanstalkdProcess
) -> None:
    queue.add_job("r", 1)
    beanstalkd.restart(binlog_dir=False)
    job_id = queue.add_job("r", 2)
    assert queue.job_stats(job_id)["tube"] == "kq-r"


def test_worker_rides_out_a_broker_restart(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    worker = make_queue(reconnect_delay=(0.05, 0.2))
    seen: list[object] = []
    worker.add_handler("ride", lambda job: seen.append(job.data))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(worker.run_jobs(count_limit=1)))
    thread.start()
    with greenstalk.Client(beanstalkd.address) as client:
        blocked = wait_for(lambda: client.stats()["current-waiting"] == 1, timeout=10)
    assert blocked, "the worker never blocked in reserve"
    beanstalkd.kill()
    time.sleep(0.3)  # the outage itself (the worker retries with backoff meanwhile)
    beanstalkd.start()
    make_queue().add_job("ride", "after restart")
    thread.join(10)
    assert not thread.is_alive()
    assert result == [1]
    assert seen == ["after restart"]


def test_run_jobs_arguments_are_validated(queue: KQueue) -> None:
    with pytest.raises(ValidationError):
        queue.run_jobs(count_limit="5")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        queue.add_handler("h", "not callable")  # type: ignore[arg-type]
