"""``kqueue worker --concurrency N`` as a real process: async handlers many at once, plain
handlers in threads, and the graceful and forced stops of the sync worker."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import greenstalk

from kqueue import KQueue, worker
from kqueue.aio import worker as aio_worker
from tests.cli.test_worker_process import producer, ran, wait_until
from tests.servers import BeanstalkdProcess

Spawn = Callable[..., subprocess.Popen[str]]


def test_the_asyncio_worker_exits_with_the_sync_workers_codes() -> None:
    assert (aio_worker.EXIT_OK, aio_worker.EXIT_FORCED) == (worker.EXIT_OK, worker.EXIT_FORCED)


def test_async_handlers_run_at_once_up_to_the_concurrency(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    # Given four slow async jobs
    with producer(beanstalkd) as queue:
        queue.add_jobs("slow", [{"seconds": 1, "n": n} for n in range(4)])
    # When a worker takes them four at a time
    proc = spawn_kqueue("worker", "tests.cli.async_app:queue", "--concurrency", "4")
    # Then all four are running before any finished
    wait_until(lambda: len(ran(out_file)) >= 4)
    assert all("started" in line for line in ran(out_file)[:4])  # type: ignore[operator]
    wait_until(lambda: len(ran(out_file)) == 8)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def test_plain_handlers_run_on_the_asyncio_worker_too(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    with producer(beanstalkd) as queue:
        queue.add_jobs("record", list(range(6)))
    proc = spawn_kqueue("worker", "tests.cli.app:queue", "--concurrency", "3", "--burst")
    assert proc.wait(30) == 0
    assert sorted(ran(out_file)) == list(range(6))  # type: ignore[type-var]


def test_sigterm_lets_the_jobs_in_flight_finish_then_exits_0(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    proc = spawn_kqueue("worker", "tests.cli.async_app:queue", "--concurrency", "2")
    with producer(beanstalkd) as queue:
        queue.add_jobs("slow", [{"seconds": 1, "n": n} for n in range(2)])
        wait_until(lambda: len(ran(out_file)) == 2)
        queue.add_job("record", "queued behind")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        finished = [line for line in ran(out_file) if isinstance(line, dict) and "n" in line]
        assert len(finished) == 2
        assert "slow" not in queue.stats().job_types  # done and deleted


def test_second_signal_cancels_the_jobs_in_flight_and_hands_them_back(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    proc = spawn_kqueue("worker", "tests.cli.async_app:queue", "--concurrency", "3")
    with KQueue(host=beanstalkd.host, port=beanstalkd.port) as queue:
        ids = queue.add_jobs("slow", [{"seconds": 60, "n": n} for n in range(3)])
        wait_until(lambda: len(ran(out_file)) == 3)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 3
        with greenstalk.Client(beanstalkd.address) as client:
            assert {client.stats_job(job_id)["state"] for job_id in ids} == {"ready"}
