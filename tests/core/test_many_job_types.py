"""A worker with many job types: every type's jobs run, and its watch list follows its
handlers (set up in one burst, however many types; see kqueue.window for the per-window cost)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import greenstalk

from kqueue import Job, KQueue
from tests.servers import BeanstalkdProcess, wait_for

TYPES = [f"type{index:02d}" for index in range(40)]


def watchers(client: greenstalk.Client[bytes], job_type: str) -> int:
    try:
        stats = client.stats_tube(f"kq-{job_type}")
    except greenstalk.NotFoundError:  # nobody watches, uses or fills it
        return 0
    return int(stats["current-watching"])


def test_a_worker_with_many_job_types_runs_every_job_of_every_type(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    worker, producer = make_queue(), make_queue()
    ran: Counter[str] = Counter()

    def handler(job: Job) -> None:
        ran[job.job_type] += 1

    for job_type in TYPES:
        worker.add_handler(job_type, handler)
    for round_ in range(3):
        for job_type in TYPES:
            producer.add_job(job_type, round_)
    assert worker.run_jobs(time_limit_ms=0) == 3 * len(TYPES)
    assert ran == Counter({job_type: 3 for job_type in TYPES})
    assert [watchers(client, job_type) for job_type in TYPES] == [1] * len(TYPES)


def test_the_watch_list_follows_handlers_added_and_removed(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    worker, producer = make_queue(), make_queue()
    for job_type in TYPES:
        worker.add_handler(job_type, lambda job: None)
    worker.run_jobs(time_limit_ms=0)
    for job_type in TYPES[::2]:
        worker.remove_handler(job_type)
    for job_type in TYPES:
        producer.add_job(job_type, "x")
    assert worker.run_jobs(time_limit_ms=0) == len(TYPES) // 2
    assert [watchers(client, job_type) for job_type in TYPES[1::2]] == [1] * (len(TYPES) // 2)
    assert [watchers(client, job_type) for job_type in TYPES[::2]] == [0] * (len(TYPES) // 2)
    assert all(
        client.stats_tube(f"kq-{job_type}")["current-jobs-ready"] == 1 for job_type in TYPES[::2]
    )


def test_a_run_for_some_job_types_watches_only_theirs_and_the_next_run_all_again(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    worker, producer = make_queue(), make_queue()
    for job_type in TYPES:
        worker.add_handler(job_type, lambda job: None)
        producer.add_job(job_type, "x")
    assert worker.run_jobs(time_limit_ms=0, job_types=TYPES[:5]) == 5
    assert [watchers(client, job_type) for job_type in TYPES] == [1] * 5 + [0] * 35
    assert worker.run_jobs(time_limit_ms=0) == 35
    assert [watchers(client, job_type) for job_type in TYPES] == [1] * len(TYPES)


def test_a_handler_added_while_the_worker_waits_is_watched_and_run(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    """The worker's tubes are worked out once per change of its handlers, from any thread."""
    worker, producer = make_queue(), make_queue()
    for job_type in TYPES:
        worker.add_handler(job_type, lambda job: None)
    ran: list[object] = []
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(worker.run_jobs(count_limit=1)))
    thread.start()
    try:
        assert wait_for(lambda: watchers(client, TYPES[-1]) == 1, timeout=10)
        worker.add_handler("late", lambda job: ran.append(job.data))
        assert wait_for(lambda: watchers(client, "late") == 1, timeout=10)
        producer.add_job("late", "hello")
        thread.join(10)
        assert result == [1] and ran == ["hello"]
    finally:
        worker.stop()
        thread.join(10)


def test_after_a_broker_restart_the_worker_watches_every_type_again(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    """The watch list comes back in one burst on the new connection, however long it is."""
    worker, producer = make_queue(), make_queue()
    for job_type in TYPES:
        worker.add_handler(job_type, lambda job: None)
    assert worker.run_jobs(time_limit_ms=0) == 0  # watching all 40
    beanstalkd.restart(binlog_dir=False)
    for job_type in TYPES:
        producer.add_job(job_type, "after")
    assert worker.run_jobs(time_limit_ms=0) == len(TYPES)
    with greenstalk.Client(beanstalkd.address, encoding=None) as fresh:
        assert [watchers(fresh, job_type) for job_type in TYPES] == [1] * len(TYPES)
        # The worker's connection ignores "default" again: a job there is not its to take.
        fresh.put(b"not a kqueue job")
        assert worker.run_jobs(time_limit_ms=0) == 0
        assert fresh.stats_tube("default")["current-jobs-ready"] == 1
