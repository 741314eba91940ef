"""A suspension outlives a server of a bonded queue that restarts empty: a recovery pass
pauses the type's tube again on it, and the jobs of that type put there afterwards wait for
``resume`` (two real beanstalkd processes, one killed -9 and restarted empty)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kqueue import Job, KQueue
from kqueue.sweeper import RecoverySweeper
from tests.bond.conftest import addresses, ready_on
from tests.conftest import _spawn
from tests.servers import BeanstalkdProcess, wait_for

TUBE = "kq-mail"


@pytest.fixture
def pair() -> Iterator[list[BeanstalkdProcess]]:
    """Two real beanstalkd processes."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(contextlib.contextmanager(_spawn)()) for _ in range(2)]


def _queue(pair: list[BeanstalkdProcess], tmp_path: Path) -> KQueue:
    return KQueue(servers=addresses(pair), bulk_store=f"sqlite:///{tmp_path / 'store.db'}")


def _worker(pair: list[BeanstalkdProcess], tmp_path: Path, ran: list[int]) -> KQueue:
    worker = _queue(pair, tmp_path)

    def mail(job: Job) -> None:
        ran.append(job.data)

    worker.add_handler("mail", mail)
    return worker


def test_a_pass_suspends_the_type_again_on_a_server_back_empty(
    pair: list[BeanstalkdProcess], tmp_path: Path
) -> None:
    ran: list[int] = []
    with _queue(pair, tmp_path) as admin, _worker(pair, tmp_path, ran) as worker:
        admin.suspend("mail")
        pair[1].restart(binlog_dir=False)  # the pause went with the process
        assert admin.sweep(grace=0).suspensions_reapplied == 1
        for n in range(6):
            admin.add_job("mail", n)
        assert ready_on(pair[1], TUBE) == 3  # round robin: half of them on the new process
        assert worker.run_jobs(time_limit_ms=1500) == 0
        assert ran == []
        admin.resume("mail")
        assert worker.run_jobs(count_limit=6, time_limit_ms=5000) == 6
    assert sorted(ran) == list(range(6))


def test_the_pause_outlives_the_pass_connection_on_an_empty_tube(
    pair: list[BeanstalkdProcess], tmp_path: Path
) -> None:
    """No job and no worker on the restarted server when the pass runs: the tube the pass
    paused must not vanish with the pass's connection (beanstalkd drops an unused tube)."""
    ran: list[int] = []
    with _queue(pair, tmp_path) as admin:
        admin.suspend("mail")
        pair[1].restart(binlog_dir=False)
        assert admin.sweep(grace=0).suspensions_reapplied == 1
        for n in range(6):
            admin.add_job("mail", n)
        with _worker(pair, tmp_path, ran) as worker:
            assert worker.run_jobs(time_limit_ms=1500) == 0
        assert ran == []
        admin.resume("mail")
        with _worker(pair, tmp_path, ran) as worker:
            assert worker.run_jobs(count_limit=6, time_limit_ms=5000) == 6
    assert sorted(ran) == list(range(6))


def test_a_background_sweeper_suspends_it_again_on_its_own(
    pair: list[BeanstalkdProcess], tmp_path: Path
) -> None:
    ran: list[int] = []
    with (
        _queue(pair, tmp_path) as admin,
        _worker(pair, tmp_path, ran) as worker,
        _queue(pair, tmp_path) as sweeping,
        RecoverySweeper(sweeping, interval=3600) as sweeper,
    ):
        admin.suspend("mail")
        assert wait_for(lambda: sweeper.passes >= 1, timeout=5)
        pair[1].restart(binlog_dir=False)
        assert wait_for(lambda: sweeper.totals["suspensions_reapplied"] >= 1, timeout=5)
        for n in range(6):
            admin.add_job("mail", n)
        assert worker.run_jobs(time_limit_ms=1500) == 0
        admin.resume("mail")
        assert worker.run_jobs(count_limit=6, time_limit_ms=5000) == 6
    assert sorted(ran) == list(range(6))
