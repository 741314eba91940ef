"""Recovery in batches, over every store: several sweepers paging through a large loss at
once put every job back exactly once, and a pass reads only what may be wrong (claims of
sweepers still at work and records a producer is still putting cost it nothing)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable

import greenstalk
import pytest

from kqueue import NOT_SCHEDULED, KQueue, RecoverySweeper
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.claims import new_claim
from kqueue.errors import BrokerConnectionError
from kqueue.serialization import record_body
from kqueue.stores import BrokerRef, Store
from kqueue.sweeper import Sweep, SweepReport
from tests.servers import BeanstalkdProcess

JOBS = 300
UNSCHEDULED = 40


def test_sweepers_paging_in_batches_at_once_put_every_lost_job_back_once(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue(connect_timeout=0.5)
    queue.add_jobs("batch", list(range(JOBS)))
    beanstalkd.kill()
    for i in range(UNSCHEDULED):  # accepted while beanstalkd was down: never scheduled
        assert queue.add_job("batch", JOBS + i) == NOT_SCHEDULED
    beanstalkd.start()
    reports: list[SweepReport] = []
    start = threading.Barrier(4)

    def sweep() -> None:
        conn = queue.new_connection()
        start.wait(10)
        reports.append(Sweep(store, conn, tube_prefix="kq-", grace=0, page_size=25).run())
        conn.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not [error for report in reports for error in report.errors]
    assert sum(r.requeued for r in reports) == JOBS + UNSCHEDULED
    with greenstalk.Client(beanstalkd.address) as client:
        assert client.stats()["total-jobs"] == JOBS + UNSCHEDULED  # not one put twice
    seen: list[object] = []
    queue.add_handler("batch", lambda job: seen.append(job.data))
    queue.run_jobs(time_limit_ms=0)
    assert Counter(seen) == Counter(range(JOBS + UNSCHEDULED))
    assert queue.sweep(grace=0).scanned == 0


def test_a_pass_reads_no_running_claim_and_puts_back_the_expired_ones(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue(connect_timeout=0.5)
    beanstalkd.kill()
    for name in ("running", "expired", "older kqueue"):
        assert queue.add_job("claims", name) == NOT_SCHEDULED
    beanstalkd.start()
    keys = {record.payload: record.key for record in store.scan(limit=10)}
    now = int(time.time())
    claims = {
        b'"running"': new_claim("busy", now + 600),
        b'"expired"': new_claim("dead", now - 5),
        b'"older kqueue"': BrokerRef("claim:oldtoken", now - 5),  # no lease in its name
    }
    for payload, claim in claims.items():
        assert store.swap_reference(keys[payload], None, claim, now=now)
    report = queue.sweep(grace=0)
    assert (report.scanned, report.requeued, report.claimed_elsewhere) == (2, 2, 0)
    assert queue.sweep(grace=0, verify=True).claimed_elsewhere == 1
    seen: list[object] = []
    queue.add_handler("claims", lambda job: seen.append(job.data))
    queue.run_jobs(time_limit_ms=0)
    assert sorted(seen) == ["expired", "older kqueue"]  # type: ignore[type-var]


def test_jobs_under_reused_ids_are_checked_in_one_batch_and_only_our_orphans_dropped(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    queue.add_jobs("ids", ["a", "b", "c"])  # ids 1, 2, 3
    beanstalkd.restart(binlog_dir=False)
    orphan = dataclasses.replace(store.scan(limit=1)[0], key="f" * 32)  # a record key of ours, gone
    with greenstalk.Client(beanstalkd.address, encoding=None) as client:
        client.use("kq-ids")
        assert client.put(record_body(orphan)) == 1  # ours, its record gone: dropped
        client.use("other-app")
        assert client.put(b"another application's job") == 2  # never touched
    assert queue.add_job("ids", "d") == 3  # ours, its record here: kept
    report = queue.sweep(grace=0)
    assert (report.requeued, report.stale_dropped, report.live) == (3, 1, 0)
    with greenstalk.Client(beanstalkd.address) as client:
        assert client.peek(2).body == "another application's job"
        with pytest.raises(greenstalk.NotFoundError):
            client.peek(1)
    seen: list[object] = []
    queue.add_handler("ids", lambda job: seen.append(job.data))
    queue.run_jobs(time_limit_ms=0)
    assert sorted(seen) == ["a", "b", "c", "d"]  # type: ignore[type-var]


class FirstPassFails:
    """A queue whose first recovery pass fails as a broker going down would make it fail."""

    def __init__(self, queue: KQueue) -> None:
        self.queue = queue
        self.passes = 0

    def sweep(self, *, grace: float | None = None, verify: bool = False) -> SweepReport:
        self.passes += 1
        if self.passes == 1:
            raise BrokerConnectionError("beanstalkd went down as the pass began")
        return self.queue.sweep(grace=grace, verify=verify)

    def new_connections(self) -> list[BeanstalkConnection]:
        return self.queue.new_connections()


def test_a_failed_pass_is_tried_again_soon_not_an_interval_later(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    queue.add_jobs("again", [1, 2])
    beanstalkd.restart(binlog_dir=False)
    flaky = FirstPassFails(queue)
    with RecoverySweeper(flaky, interval=3600, check_interval=0.05) as sweeper:
        deadline = time.monotonic() + 30
        while sweeper.last_report is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sweeper.last_report is not None and sweeper.last_report.requeued == 2
