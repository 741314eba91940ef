"""Suspend/resume and purge against a real beanstalkd."""

from __future__ import annotations

import threading
from collections.abc import Callable

import greenstalk
import pytest

from kqueue import Job, KQueue, ValidationError
from tests.core.conftest import tube_stats


def test_suspend_holds_jobs_for_every_worker_until_resume(
    make_queue: Callable[..., KQueue],
) -> None:
    admin, worker_a, worker_b = make_queue(), make_queue(), make_queue()
    ran: list[str] = []
    worker_a.add_handler("s", lambda job: ran.append("a"))
    worker_b.add_handler("s", lambda job: ran.append("b"))
    admin.suspend("s")
    for i in range(4):
        assert admin.add_job("s", i) > 0  # new jobs are still accepted
    assert worker_a.run_jobs(time_limit_ms=200) == 0
    assert worker_b.run_jobs(time_limit_ms=200) == 0
    admin.resume("s")
    total = worker_a.run_jobs(count_limit=2, time_limit_ms=500)
    total += worker_b.run_jobs(time_limit_ms=300)
    assert total == 4
    assert sorted(ran) == ["a", "a", "b", "b"]


def test_suspend_wakes_no_waiting_worker_and_resume_does(
    make_queue: Callable[..., KQueue],
) -> None:
    admin, worker = make_queue(), make_queue()
    resumed = threading.Event()
    ran_after_resume: list[bool] = []
    worker.add_handler("w", lambda job: ran_after_resume.append(resumed.is_set()))
    admin.suspend("w")
    admin.add_job("w", 1)

    def resume() -> None:
        resumed.set()
        admin.resume("w")

    timer = threading.Timer(0.3, resume)
    timer.start()
    assert worker.run_jobs(count_limit=1, time_limit_ms=5000) == 1
    timer.join()
    assert ran_after_resume == [True], "the job ran while its type was suspended"


def test_suspension_of_an_empty_type_survives_until_resume(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    admin, producer = make_queue(), make_queue()
    admin.suspend("empty")
    producer.add_job("empty", 1)
    assert client.stats_tube("kq-empty")["pause"] > 0


def test_purge_without_pattern_deletes_ready_delayed_and_buried_jobs(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    queue.add_job("p", 1)
    queue.add_job("p", 2, delay=100)
    buried_id = queue.add_job("p", 3)
    client.watch("kq-p")
    client.bury(client.reserve_job(buried_id))
    queue.add_job("other", 4)
    assert queue.purge_jobs("p") == 3
    assert tube_stats(client, "kq-p")["total-jobs"] in (0, 3)
    assert tube_stats(client, "kq-p")["current-jobs-ready"] == 0
    assert tube_stats(client, "kq-other")["current-jobs-ready"] == 1


def test_purge_with_pattern_keeps_the_others_exactly_as_they_were(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    keep_ready = queue.add_job("p", {"user": "bob"}, priority=5)
    drop_ready = queue.add_job("p", {"user": "alice"})
    keep_delayed = queue.add_job("p", {"user": "bob"}, delay=100)
    drop_delayed = queue.add_job("p", {"user": "alice2"}, delay=100)
    keep_buried = queue.add_job("p", {"user": "carol"}, priority=9)
    client.watch("kq-p")
    client.bury(client.reserve_job(keep_buried), priority=9)
    assert queue.purge_jobs("p", pattern=r'"alice') == 2
    for gone in (drop_ready, drop_delayed):
        with pytest.raises(greenstalk.NotFoundError):
            client.stats_job(gone)
    ready, delayed, buried = (client.stats_job(i) for i in (keep_ready, keep_delayed, keep_buried))
    assert (ready["state"], ready["pri"]) == ("ready", 5)
    assert delayed["state"] == "delayed"
    assert 99 <= delayed["time-left"] <= 101
    assert (buried["state"], buried["pri"]) == ("buried", 9)
    assert tube_stats(client, "kq-p")["current-jobs-reserved"] == 0


def test_purge_leaves_jobs_reserved_by_workers_alone(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    admin, worker = make_queue(), make_queue()
    in_handler = threading.Event()
    release = threading.Event()
    purged: list[int] = []

    def handler(job: Job) -> None:
        in_handler.set()
        release.wait(5)

    worker.add_handler("busy", handler)
    busy_id = admin.add_job("busy", "x")
    admin.add_job("busy", "y")
    thread = threading.Thread(target=lambda: worker.run_jobs(count_limit=1, time_limit_ms=5000))
    thread.start()
    assert in_handler.wait(5)
    purged.append(admin.purge_jobs("busy"))
    assert client.stats_job(busy_id)["state"] == "reserved"
    release.set()
    thread.join(5)
    assert purged == [1]


def test_purge_with_bytes_pattern_matches_binary_payloads(queue: KQueue) -> None:
    queue.add_job("bin", b"\x00\x01keep")
    queue.add_job("bin", b"\x00\x02drop")
    assert queue.purge_jobs("bin", pattern=rb"\x02") == 1


def test_purge_of_unknown_type_is_zero(queue: KQueue) -> None:
    assert queue.purge_jobs("never-used") == 0


def test_purge_with_invalid_regex_is_a_validation_error(queue: KQueue) -> None:
    queue.add_job("rx", 1)
    with pytest.raises(ValidationError):
        queue.purge_jobs("rx", pattern="(unclosed")
    assert queue.purge_jobs("rx") == 1
