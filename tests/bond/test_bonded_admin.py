"""Administration and recovery of a queue over several beanstalkd servers: suspend, resume,
purge, kick and stats reach every server; a recovery pass trusts the jobs of every live
server, puts back those of a server that restarted empty, and waits ``server_down_grace``
for one that is only unreachable."""

from __future__ import annotations

from collections.abc import Callable

from kqueue import Job, KQueue
from kqueue.stores import MemoryStore
from kqueue.stores.base import iter_records
from tests.bond.conftest import id_of, ready_on
from tests.servers import BeanstalkdProcess

TUBE = "kq-mail"


def _fill(queue: KQueue, count: int) -> None:
    for n in range(count):
        queue.add_job("mail", n)


def test_suspend_and_resume_hold_every_server(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    queue = make_bonded(bulk_store=MemoryStore())
    _fill(queue, 6)
    queue.suspend("mail")
    queue.add_handler("mail", lambda job: None)
    assert queue.run_jobs(time_limit_ms=0) == 0  # no server delivers a suspended type
    queue.resume("mail")
    assert queue.run_jobs(count_limit=6, time_limit_ms=3000) == 6


def test_purge_and_kick_reach_every_server(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    queue = make_bonded(bulk_store=store)
    _fill(queue, 9)

    def bury(job: Job) -> None:
        queue.bury_job(job)

    queue.add_handler("mail", bury)
    assert queue.run_jobs(count_limit=9, time_limit_ms=3000) == 9
    assert queue.stats().job_types["mail"]["current-jobs-buried"] == 9
    assert queue.kick_buried("mail", 4) == 4
    assert queue.kick_buried("mail") == 5
    assert sum(ready_on(broker, TUBE) for broker in trio) == 9
    assert queue.purge_jobs("mail") == 9
    assert list(iter_records(store)) == []


def test_stats_per_server_and_summed(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    queue = make_bonded()
    _fill(queue, 7)
    stats = queue.stats()
    assert stats.job_types["mail"]["current-jobs-ready"] == 7
    assert stats.servers is not None and len(stats.servers) == 3
    each = [s for s in stats.servers.values() if not isinstance(s, str)]
    assert sorted(s["current-jobs-ready"] for s in each) == [2, 2, 3]
    assert stats.server["current-jobs-ready"] == 7
    lost = ready_on(trio[2], TUBE)
    trio[2].kill()
    stats = queue.stats()  # a server down is said, the others still counted
    assert stats.servers is not None
    assert sum(isinstance(s, str) for s in stats.servers.values()) == 1
    assert stats.job_types["mail"]["current-jobs-ready"] == 7 - lost


def test_a_sweep_trusts_every_live_server(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    queue = make_bonded(bulk_store=MemoryStore())
    _fill(queue, 9)
    report = queue.sweep(grace=0)
    assert (report.requeued, report.servers_gone) == (0, 0)
    assert sum(ready_on(broker, TUBE) for broker in trio) == 9


def test_a_sweep_puts_back_the_jobs_of_a_server_restarted_empty(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    queue = make_bonded(bulk_store=store)
    _fill(queue, 9)
    trio[1].restart(binlog_dir=False)
    report = queue.sweep(grace=0)
    assert report.requeued == 3
    assert sum(ready_on(broker, TUBE) for broker in trio) == 9
    live = {id_of(broker) for broker in trio}
    assert all(r.ref is not None and r.ref.server_id in live for r in iter_records(store))


def test_a_server_down_keeps_its_jobs_for_the_down_grace(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    patient = make_bonded(bulk_store=store, server_down_grace=3600)
    hasty = make_bonded(bulk_store=store, server_down_grace=0)
    _fill(patient, 9)
    patient.sweep(grace=0)
    hasty.sweep(grace=0)  # both saw every server answer
    trio[0].kill()
    assert patient.sweep(grace=0).requeued == 0  # it may come back with its binlog
    assert hasty.sweep(grace=0).requeued == 3  # down past its grace: onto the others
    assert ready_on(trio[1], TUBE) + ready_on(trio[2], TUBE) == 9
