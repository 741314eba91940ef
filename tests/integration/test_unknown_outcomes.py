"""A store write whose reply never comes (Redis stopped, not dead) may have committed: add_job
says so with its own error and the job's key, never "refused", and the job is not lost."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator

import pytest

from kqueue import KQueue, StoreError, StoreOutcomeUnknownError
from kqueue.stores.redis import RedisStore
from tests.servers import BeanstalkdProcess, free_port, missing_service, wait_for, wait_for_port


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own on a free port (it gets stopped and continued)."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server not installed")
        raise AssertionError("unreachable")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port)
        yield process, f"redis://127.0.0.1:{port}/0"
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()


def test_a_write_without_reply_is_an_unknown_outcome_with_the_key(
    beanstalkd: BeanstalkdProcess, own_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, url = own_redis
    store = RedisStore(url, socket_timeout=0.5)
    queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store)
    queue.add_job("u", "warm")  # connected
    process.send_signal(signal.SIGSTOP)
    with pytest.raises(StoreOutcomeUnknownError) as caught:
        queue.add_job("u", "maybe")
    assert len(caught.value.keys) == 1 and caught.value.keys[0] in str(caught.value)
    assert isinstance(caught.value, StoreError)  # still a store error for older callers
    process.send_signal(signal.SIGCONT)
    # The stopped server had the write in its buffer: it did commit. The key tells. (Once
    # continued, Redis may answer this read's connection before it reads the buffered write.)
    assert wait_for(lambda: store.get(caught.value.keys[0]) is not None, timeout=5)
    assert queue.sweep(grace=0).requeued == 1  # never reached beanstalkd: the sweeper puts it
    seen: list[object] = []
    queue.add_handler("u", lambda job: seen.append(job.data))
    queue.run_jobs(count_limit=2, time_limit_ms=5000)
    assert sorted(map(str, seen)) == ["maybe", "warm"]
    queue.close()
    store.close()
