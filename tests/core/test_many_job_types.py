"""A worker with many job types: every type's jobs run, and its watch list follows its
handlers (set up in one burst, however many types; see kqueue.window for the per-window cost)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import greenstalk

from kqueue import Job, KQueue

TYPES = [f"type{index:02d}" for index in range(40)]


def watchers(client: greenstalk.Client[bytes], job_type: str) -> int:
    stats = client.stats_tube(f"kq-{job_type}")
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
