"""Workers of a queue over several beanstalkd servers: jobs of every server run, the most
urgent of a window first, acks go to the server that reserved the job, a waiting worker wakes
on any server, a dead server does not stop the others, and a run that ends hands back what
an outstanding reserve took."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kqueue import Job, KQueue
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.bonded import deal
from kqueue.stores import MemoryStore
from kqueue.stores.base import iter_records
from tests.bond.conftest import ready_on
from tests.servers import BeanstalkdProcess, wait_for

TUBE = "kq-mail"


def _single(broker: BeanstalkdProcess, **kwargs: object) -> KQueue:
    return KQueue(host=broker.host, port=broker.port, **kwargs)  # type: ignore[arg-type]


def test_jobs_of_every_server_run_and_are_deleted_there(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    producer = make_bonded(bulk_store=store)
    for n in range(30):
        producer.add_job("mail", n)
    worker = make_bonded(bulk_store=store)
    seen: list[int] = []
    worker.add_handler("mail", lambda job: seen.append(job.data))
    assert worker.run_jobs(count_limit=30, time_limit_ms=5000) == 30
    assert sorted(seen) == list(range(30))
    assert [ready_on(broker, TUBE) for broker in trio] == [0, 0, 0]
    assert list(iter_records(store)) == []
    for broker in trio:  # deleted on the server that held them, none left reserved
        conn = BeanstalkConnection(broker.host, broker.port)
        stats = conn.stats_tube(TUBE)
        conn.close()
        assert stats is not None and stats["current-jobs-reserved"] == 0


def test_the_most_urgent_of_a_window_runs_first(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    # Given jobs of mixed priorities put straight onto each server (not taking turns).
    priorities = {0: [500, 100], 1: [300, 50], 2: [400, 200]}
    for index, prios in priorities.items():
        with _single(trio[index], bulk_store=None) as one:
            for prio in prios:
                one.add_job("mail", prio, priority=prio)
    worker = make_bonded(window=16)
    worker.consumer._window._seconds_per_job = 1e-6  # a measured fast pace: a full window
    seen: list[int] = []
    worker.add_handler("mail", lambda job: seen.append(job.data))
    assert worker.run_jobs(count_limit=6, time_limit_ms=5000) == 6
    assert seen == [50, 100, 200, 300, 400, 500]


def test_a_waiting_worker_wakes_on_any_server(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    worker = make_bonded(heartbeat=5)
    seen: list[int] = []
    worker.add_handler("mail", lambda job: seen.append(job.data))
    runner = threading.Thread(target=lambda: worker.run_jobs(count_limit=3, time_limit_ms=20000))
    runner.start()
    try:
        for index in (2, 0, 1):
            time.sleep(0.2)  # the worker is waiting on every server by now
            with _single(trio[index]) as one:
                one.add_job("mail", index)
            assert wait_for(lambda i=index: i in seen, timeout=4)  # type: ignore[misc]
    finally:
        worker.stop()
        runner.join(10)
    assert seen == [2, 0, 1]


def test_an_ended_run_hands_back_what_an_outstanding_reserve_took(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    worker = make_bonded(heartbeat=5)
    worker.add_handler("mail", lambda job: None)
    assert worker.run_jobs(time_limit_ms=300) == 0  # left reserves outstanding, then ended
    with _single(trio[1]) as one:
        one.add_job("mail", 1)
        one.add_handler("mail", lambda job: None)
        # Not held by the worker that stopped waiting: another worker runs it at once.
        assert one.run_jobs(count_limit=1, time_limit_ms=3000) == 1


def test_a_dead_server_does_not_stop_the_others(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    producer = make_bonded(bulk_store=store)
    worker = make_bonded(bulk_store=store, reconnect_delay=(0.05, 0.2))
    seen: list[int] = []
    worker.add_handler("mail", lambda job: seen.append(job.data))
    assert worker.run_jobs(time_limit_ms=100) == 0  # connected to all three
    trio[0].kill()
    for n in range(12):
        producer.add_job("mail", n)
    assert worker.run_jobs(count_limit=12, time_limit_ms=5000) == 12
    assert sorted(seen) == list(range(12))


def test_a_handler_releases_and_buries_on_its_own_server(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    producer = make_bonded()
    for n in range(6):
        producer.add_job("mail", n)
    worker = make_bonded()

    def bury_odd(job: Job) -> None:
        if job.data % 2:
            worker.bury_job(job)

    worker.add_handler("mail", bury_odd)
    assert worker.run_jobs(count_limit=6, time_limit_ms=5000) == 6
    buried = 0
    for broker in trio:
        conn = BeanstalkConnection(broker.host, broker.port)
        stats = conn.stats_tube(TUBE)
        conn.close()
        assert stats is not None
        buried += stats["current-jobs-buried"]
    assert buried == 3


def test_windows_are_dealt_over_servers_by_turns() -> None:
    assert deal(5, [10, 0, 10]) == [3, 0, 2]
    assert deal(10, [1, 2, 3]) == [1, 2, 3]
    assert deal(1, [4, 4]) == [1, 0]
    assert deal(0, [4]) == [0]


def test_a_count_limit_holds_when_several_servers_answer_at_once(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    worker = make_bonded(heartbeat=5)
    seen: list[int] = []
    worker.add_handler("mail", lambda job: seen.append(job.data))
    ran: list[int] = []
    runner = threading.Thread(target=lambda: ran.append(worker.run_jobs(1, 10000)))
    runner.start()
    time.sleep(0.3)  # waiting on every server
    for index in range(3):
        with _single(trio[index]) as one:
            one.add_job("mail", index)
    runner.join(10)
    assert ran == [1] and len(seen) == 1
    other = make_bonded()
    other.add_handler("mail", lambda job: seen.append(job.data))
    assert other.run_jobs(count_limit=2, time_limit_ms=3000) == 2  # none held or lost
    assert sorted(seen) == [0, 1, 2]
