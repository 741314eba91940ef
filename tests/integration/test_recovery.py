"""Recovery over every store: the sweeper re-enqueues what beanstalkd lost, and only that."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import greenstalk
import pytest

from kqueue import NOT_SCHEDULED, ConfigurationError, Job, KQueue, RecoverySweeper
from kqueue.middleware.base import Middleware
from kqueue.stores import Store
from kqueue.sweeper import Sweep, SweepReport
from kqueue.worker import Worker
from tests.servers import BeanstalkdProcess


def run_all(queue: KQueue, job_type: str) -> list[object]:
    seen: list[object] = []
    queue.add_handler(job_type, lambda job: seen.append(job.data))
    queue.run_jobs(time_limit_ms=0)
    return seen


def test_sweeper_requeues_jobs_when_broker_lost_them(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    for i in range(5):
        queue.add_job("lost", i)
    beanstalkd.restart(binlog_dir=False)
    report = queue.sweep(grace=0)
    assert (report.scanned, report.requeued, report.live) == (5, 5, 0)
    assert sorted(run_all(queue, "lost")) == [0, 1, 2, 3, 4]  # type: ignore[type-var]
    assert store.count() == 0
    assert queue.sweep(grace=0).scanned == 0


def test_sweeper_leaves_ready_delayed_reserved_and_buried_jobs_alone(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    queue.add_job("held", "ready")
    queue.add_job("held", "delayed", delay=300)
    reserved_id = queue.add_job("held", "reserved", priority=1)
    buried_id = queue.add_job("held", "buried", priority=0)
    with greenstalk.Client(beanstalkd.address, watch="kq-held") as worker:
        worker.bury(worker.reserve_job(buried_id))
        worker.reserve_job(reserved_id)  # a handler that runs for a long time
        for _ in range(2):
            trusted = queue.sweep(grace=0)  # the same server: no job looked at
            assert (trusted.scanned, trusted.requeued, trusted.requeued_buried) == (0, 0, 0)
            report = queue.admin.sweep(grace=0, verify=True)
            assert (report.live, report.requeued, report.requeued_buried) == (4, 0, 0)
    with greenstalk.Client(beanstalkd.address) as client:
        assert client.stats()["total-jobs"] == 4


def test_sweeper_checks_identity_not_just_ids_reused_after_a_restart(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    first = queue.add_job("ids", "before restart")
    beanstalkd.restart(binlog_dir=False)
    second = queue.add_job("ids", "after restart")
    assert first == second == 1  # the new server reuses id 1 for another job
    report = queue.sweep(grace=0)
    # Only the record of the old server is looked at: id 1 holds another job now.
    assert (report.scanned, report.live, report.requeued) == (1, 0, 1)
    assert sorted(run_all(queue, "ids")) == ["after restart", "before restart"]  # type: ignore[type-var]


def test_binlog_restart_loses_nothing_and_sweeper_duplicates_nothing(
    store: Store, beanstalkd_binlog: BeanstalkdProcess
) -> None:
    server = beanstalkd_binlog
    queue = KQueue(host=server.host, port=server.port, bulk_store=store)
    try:
        for i in range(5):
            queue.add_job("bin", i)
        server.restart()
        report = queue.sweep(grace=0)
        assert (report.live, report.requeued, report.references_updated) == (5, 0, 5)
        assert queue.sweep(grace=0).references_updated == 0
        assert sorted(run_all(queue, "bin")) == [0, 1, 2, 3, 4]  # type: ignore[type-var]
        assert store.count() == 0
    finally:
        queue.close()


def test_young_records_are_left_for_the_grace_period(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue(connect_timeout=0.5)
    beanstalkd.kill()
    assert queue.add_job("young", "accepted while down") == NOT_SCHEDULED
    beanstalkd.start()
    passing = queue.sweep(grace=60)
    assert (passing.scanned, passing.young, passing.requeued) == (0, 1, 0)  # counted, not read
    assert queue.sweep(grace=60, verify=True).young == 1
    assert queue.sweep(grace=0).requeued == 1
    assert run_all(queue, "young") == ["accepted while down"]


def test_job_of_a_producer_killed_between_store_write_and_put_is_delivered(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    db = tmp_path / "shared.sqlite3"
    script = (
        "import os\n"
        "from kqueue import KQueue\n"
        "from kqueue.stores.sql import SQLStore\n"
        "class DiesAfterTheWrite(SQLStore):\n"
        "    def put_many(self, records):\n"
        "        super().put_many(records)\n"
        "        os._exit(9)  # die right after the store write, before the put\n"
        f"KQueue(host={beanstalkd.host!r}, port={beanstalkd.port}, "
        f"bulk_store=DiesAfterTheWrite('sqlite:///{db}'))"
        ".add_job('orphan', {'from': 'dead producer'})\n"
    )
    died = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert died.returncode == 9
    queue = make_queue(bulk_store=f"sqlite:///{db}")
    assert queue.sweep(grace=0).requeued == 1
    assert run_all(queue, "orphan") == [{"from": "dead producer"}]


def test_concurrent_sweepers_never_enqueue_a_job_twice(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    for i in range(60):
        queue.add_job("race", i)
    beanstalkd.restart(binlog_dir=False)
    reports = []

    def sweep() -> None:
        conn = queue.new_connection()
        reports.append(Sweep(store, conn, tube_prefix="kq-", grace=0).run())
        conn.close()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(r.requeued for r in reports) == 60
    with greenstalk.Client(beanstalkd.address) as client:
        assert client.stats()["total-jobs"] == 60
    assert len(run_all(queue, "race")) == 60


def test_suspension_survives_a_broker_restart(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    admin, worker = make_queue(), make_queue()
    admin.suspend("sus")
    admin.add_job("sus", 1)
    beanstalkd.restart(binlog_dir=False)
    report = admin.sweep(grace=0)
    assert (report.suspensions_reapplied, report.requeued) == (1, 1)
    worker.add_handler("sus", lambda job: None)
    assert worker.run_jobs(time_limit_ms=200) == 0
    admin.resume("sus")
    assert worker.run_jobs(time_limit_ms=500) == 1


def test_buried_job_is_restored_buried(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    queue.add_handler("dead", lambda job: queue.bury_job(job, reason="poison"))
    queue.add_job("dead", 1)
    queue.run_jobs(time_limit_ms=0)
    beanstalkd.restart(binlog_dir=False)
    assert queue.sweep(grace=0).requeued_buried == 1
    assert queue.stats().job_types["dead"]["current-jobs-buried"] == 1


def test_postdated_job_keeps_the_rest_of_its_delay(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    queue.add_job("later", 1, delay=300)
    beanstalkd.restart(binlog_dir=False)
    queue.sweep(grace=0)
    delayed = queue.stats().job_types["later"]
    assert delayed["current-jobs-delayed"] == 1


def test_recovery_sweeper_thread_delivers_lost_jobs(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue(recovery_grace=0)
    queue.add_job("bg", "x")
    beanstalkd.restart(binlog_dir=False)
    seen: list[object] = []
    queue.add_handler("bg", lambda job: seen.append(job.data))
    with RecoverySweeper(queue, interval=0.1) as sweeper:
        assert queue.run_jobs(count_limit=1, time_limit_ms=5000) == 1
    assert seen == ["x"]
    assert sweeper.passes >= 1


def test_sweep_without_a_store_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="bulk store"):
        KQueue().sweep()


def test_worker_started_before_the_restart_runs_recovered_jobs(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    worker, producer = make_queue(reconnect_delay=(0.05, 0.2)), make_queue()
    seen: list[object] = []
    worker.add_handler("w", lambda job: seen.append(job.data))
    producer.add_job("w", "one")
    worker.run_jobs(time_limit_ms=0)
    producer.add_job("w", "two")
    beanstalkd.restart(binlog_dir=False)
    producer.sweep(grace=0)
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        worker.run_jobs(time_limit_ms=200)
    assert seen == ["one", "two"]


def test_kicked_dead_letter_gets_a_fresh_budget_and_is_recovered_ready(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    from kqueue import RetryPolicy

    queue = make_queue(retry=RetryPolicy(max_attempts=2, base_delay=0, max_delay=0))
    outcomes: list[int] = []

    def flaky(job: object) -> None:
        outcomes.append(job.attempts)  # type: ignore[attr-defined]
        raise RuntimeError("down")

    queue.add_handler("dl", flaky)
    queue.add_job("dl", 1)
    queue.run_jobs(time_limit_ms=0)
    assert outcomes == [1, 2]
    assert queue.kick_buried("dl") == 1
    (record,) = store.scan(job_type="dl")
    assert (record.state, record.attempts, record.last_error) == ("enqueued", 0, None)
    beanstalkd.restart(binlog_dir=False)
    report = queue.sweep(grace=0)
    assert (report.requeued, report.requeued_buried) == (1, 0)
    queue.run_jobs(time_limit_ms=0)
    assert outcomes == [1, 2, 1, 2]


class PassWatcher(Middleware):
    """Counts the recovery passes of a queue, so a test waits for one without sleeping."""

    def __init__(self) -> None:
        self.reports: list[SweepReport] = []
        self._changed = threading.Condition()

    def after_sweep(self, report: SweepReport) -> None:
        with self._changed:
            self.reports.append(report)
            self._changed.notify_all()

    def wait_for(self, passes: int, timeout: float = 60.0) -> bool:
        """True once ``passes`` passes ran (the timeout only guards against a hang)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.reports) >= passes, timeout)


def test_jobs_a_restarted_broker_lost_are_put_back_at_once_whatever_their_age(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()  # the default grace: 30 s
    for i in range(5):
        queue.add_job("fresh", i)
    beanstalkd.restart(binlog_dir=False)
    report = queue.sweep()
    assert (report.requeued, report.young, report.servers_gone) == (5, 0, 1)
    assert sorted(run_all(queue, "fresh")) == [0, 1, 2, 3, 4]  # type: ignore[type-var]


def test_sweeper_notices_a_restart_and_sweeps_without_waiting_its_interval(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    watcher = PassWatcher()
    queue = make_queue(middleware=[watcher])
    with RecoverySweeper(queue, interval=3600, check_interval=0.05) as sweeper:
        assert watcher.wait_for(1)  # the first pass runs at start
        for i in range(20):
            queue.add_job("soon", i)
        beanstalkd.restart(binlog_dir=False)
        assert watcher.wait_for(2)  # an hour before the interval would bring it
    assert sweeper.restarts_seen == 1
    assert watcher.reports[1].requeued == 20
    assert sorted(run_all(queue, "soon")) == list(range(20))  # type: ignore[type-var]


def test_sweeping_worker_runs_the_jobs_a_restart_lost_without_waiting_its_interval(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue(reconnect_delay=(0.05, 0.2))
    seen: list[object] = []
    done = threading.Event()

    def handler(job: Job) -> None:
        seen.append(job.data)
        if len(seen) == 9:
            done.set()

    queue.add_handler("idle", lambda job: None)  # the worker runs, watching another type
    producer = make_queue()
    worker = Worker(queue, sweep_interval=3600)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        for i in range(9):
            producer.add_job("w", i)  # nobody watches "w" yet: the jobs wait in beanstalkd
        beanstalkd.restart(binlog_dir=False)
        queue.add_handler("w", handler)
        assert done.wait(60)  # guards a hang; the measured time is in docs/reliability.md
    finally:
        queue.stop()
        thread.join(30)
    assert sorted(seen) == list(range(9))  # type: ignore[type-var]


def test_binlog_restart_with_the_default_grace_puts_nothing_twice(
    store: Store, beanstalkd_binlog: BeanstalkdProcess
) -> None:
    server = beanstalkd_binlog
    queue = KQueue(host=server.host, port=server.port, bulk_store=store)
    try:
        for i in range(5):
            queue.add_job("kept", i)
        server.restart()
        report = queue.sweep()
        assert (report.requeued, report.live, report.references_updated) == (0, 5, 5)
        assert queue.sweep().scanned == 0  # every reference names the new server now
        with greenstalk.Client(server.address) as client:
            stats = client.stats()
            assert (stats["total-jobs"], stats["current-jobs-ready"]) == (0, 5)  # no put
        assert sorted(run_all(queue, "kept")) == [0, 1, 2, 3, 4]  # type: ignore[type-var]
    finally:
        queue.close()


def test_a_job_deleted_behind_kqueues_back_is_put_back_by_a_verifying_pass(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    watcher = PassWatcher()
    queue = make_queue(middleware=[watcher])
    job_id = queue.add_job("foreign", "x")
    with greenstalk.Client(beanstalkd.address) as client:
        client.delete(job_id)  # another client deletes it by id: kqueue is not told
    assert queue.sweep().requeued == 0  # trusted: this server did not restart
    with RecoverySweeper(queue, interval=3600, verify_interval=0):
        assert watcher.wait_for(2)
    assert (watcher.reports[1].verified, watcher.reports[1].requeued) == (True, 1)
    assert run_all(queue, "foreign") == ["x"]
