"""KQueue against a real beanstalkd: adding, running, ordering, outcomes."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import greenstalk
import pytest

from kqueue import PRIO_HIGH, PRIO_LOW, PRIO_URGENT, Job, KQueue
from tests.core.conftest import tube_stats
from tests.servers import BeanstalkdProcess


def test_added_job_runs_with_its_payload(queue: KQueue) -> None:
    seen: list[Job] = []
    queue.add_handler("greet", seen.append)
    job_id = queue.add_job("greet", {"name": "Ada", "n": [1, 2]})
    assert queue.run_jobs(count_limit=10, time_limit_ms=0) == 1
    assert [(j.id, j.data, j.job_type, j.attempts) for j in seen] == [
        (job_id, {"name": "Ada", "n": [1, 2]}, "greet", 1)
    ]
    assert seen[0].outcome == "deleted"


def test_bytes_payload_arrives_unchanged(queue: KQueue) -> None:
    seen: list[object] = []
    queue.add_handler("blob", lambda job: seen.append(job.data))
    payload = bytes(range(256)) * 4
    queue.add_job("blob", payload)
    queue.run_jobs(time_limit_ms=0)
    assert seen == [payload]


def test_jobs_run_in_priority_order_then_fifo(queue: KQueue) -> None:
    order: list[str] = []
    queue.add_handler("p", lambda job: order.append(job.data))
    queue.add_job("p", "low", priority=PRIO_LOW)
    queue.add_job("p", "high-1", priority=PRIO_HIGH)
    queue.add_job("p", "urgent", priority=PRIO_URGENT)
    queue.add_job("p", "high-2", priority=PRIO_HIGH)
    queue.add_job("p", "zero", priority=0)
    queue.run_jobs(time_limit_ms=0)
    assert order == ["zero", "urgent", "high-1", "high-2", "low"]


def test_job_types_use_prefixed_tubes_and_leave_foreign_tubes_alone(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    client.use("foreign")
    client.put(b"not ours")
    queue.add_handler("mine", lambda job: None)
    queue.add_job("mine", 1)
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert "kq-mine" in client.tubes()
    assert tube_stats(client, "foreign")["current-jobs-ready"] == 1
    assert tube_stats(client, "default")["current-jobs-ready"] == 0


def test_custom_tube_prefix(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    queue = make_queue(tube_prefix="app1.")
    queue.add_job("x", 1)
    assert "app1.x" in client.tubes()


def test_delayed_job_waits_for_its_delay(queue: KQueue) -> None:
    ran: list[float] = []
    queue.add_handler("later", lambda job: ran.append(time.monotonic()))
    added = time.monotonic()
    queue.add_job("later", None, delay=1)
    assert queue.run_jobs(time_limit_ms=0) == 0
    assert queue.run_jobs(count_limit=1, time_limit_ms=3000) == 1
    assert 0.95 <= ran[0] - added < 2.0


def test_run_jobs_honours_count_limit(queue: KQueue) -> None:
    queue.add_handler("c", lambda job: None)
    for i in range(5):
        queue.add_job("c", i)
    assert queue.run_jobs(count_limit=2, time_limit_ms=0) == 2
    assert queue.run_jobs(count_limit=-1, time_limit_ms=0) == 3
    assert queue.run_jobs(count_limit=0, time_limit_ms=0) == 0


def test_run_jobs_waits_at_most_the_time_limit(queue: KQueue) -> None:
    queue.add_handler("idle", lambda job: None)
    started = time.monotonic()
    assert queue.run_jobs(time_limit_ms=250) == 0
    # It waited (the lower bound is the behaviour); the upper bound only says it returned
    # rather than waiting forever, and is generous for a loaded machine.
    assert 0.24 <= time.monotonic() - started < 10


def test_run_jobs_picks_up_a_job_added_while_waiting(
    make_queue: Callable[..., KQueue],
) -> None:
    worker, producer = make_queue(), make_queue()
    seen: list[object] = []
    worker.add_handler("w", lambda job: seen.append(job.data))
    timer = threading.Timer(0.2, lambda: producer.add_job("w", "hi"))
    timer.start()
    started = time.monotonic()
    assert worker.run_jobs(count_limit=1, time_limit_ms=5000) == 1
    assert seen == ["hi"]
    assert time.monotonic() - started < 4.5  # woke for the job, not at the 5 s limit


def test_stop_from_another_thread_ends_an_endless_run(queue: KQueue) -> None:
    queue.add_handler("s", lambda job: None)
    threading.Timer(0.2, queue.stop).start()
    started = time.monotonic()
    assert queue.run_jobs() == 0  # returning at all is the behaviour: it had no limit
    assert time.monotonic() - started >= 0.15


def test_stop_from_a_handler_ends_the_run_after_that_job(queue: KQueue) -> None:
    queue.add_handler("s", lambda job: queue.stop())
    for i in range(3):
        queue.add_job("s", i)
    assert queue.run_jobs() == 1


def test_job_reserved_while_abandoning_a_wait_is_not_lost(queue: KQueue) -> None:
    queue.add_handler("r", lambda job: None)
    for _ in range(20):
        queue.run_jobs(time_limit_ms=1)
    queue.add_job("r", 1)
    assert queue.run_jobs(time_limit_ms=0) == 1


def test_run_jobs_without_handlers_waits_and_returns_zero(queue: KQueue) -> None:
    queue.add_job("nobody", 1)
    started = time.monotonic()
    assert queue.run_jobs(time_limit_ms=100) == 0
    assert time.monotonic() - started >= 0.09


def test_removed_handler_leaves_its_jobs_queued(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    queue.add_handler("gone", lambda job: None)
    queue.remove_handler("gone")
    queue.add_job("gone", 1)
    assert queue.run_jobs(time_limit_ms=0) == 0
    assert tube_stats(client, "kq-gone")["current-jobs-ready"] == 1


def test_one_handler_per_job_type(queue: KQueue) -> None:
    queue.add_handler("one", lambda job: None)
    with pytest.raises(ValueError, match="already has a handler"):
        queue.add_handler("one", lambda job: None)
    with pytest.raises(ValueError, match="no handler"):
        queue.remove_handler("other")


def test_jobs_added_by_another_process_run_here(
    queue: KQueue, beanstalkd: BeanstalkdProcess
) -> None:
    script = (
        "from kqueue import KQueue\n"
        f"q = KQueue(host={beanstalkd.host!r}, port={beanstalkd.port})\n"
        "for i in range(3): q.add_job('xproc', {'i': i})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    seen: list[object] = []
    queue.add_handler("xproc", lambda job: seen.append(job.data))
    assert queue.run_jobs(time_limit_ms=0) == 3
    assert seen == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_inline_queue_warns_once_that_only_beanstalkd_holds_jobs(
    queue: KQueue, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kqueue"):
        queue.add_job("w", 1)
        queue.add_job("w", 2)
    warnings = [r for r in caplog.records if "no bulk store" in r.getMessage()]
    assert len(warnings) == 1


def test_context_manager_opens_and_closes(beanstalkd: BeanstalkdProcess) -> None:
    with KQueue(host=beanstalkd.host, port=beanstalkd.port) as queue:
        assert queue.add_job("ctx", 1) >= 1
    assert not queue.producer.connected


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        KQueue("127.0.0.1", 11300)  # type: ignore[call-arg]


def test_stats_report_job_types_and_counters(queue: KQueue) -> None:
    queue.add_handler("st", lambda job: None)
    queue.add_job("st", 1)
    queue.add_job("st", 2, delay=60)
    queue.run_jobs(time_limit_ms=0)
    stats = queue.stats()
    assert stats.job_types["st"]["current-jobs-delayed"] == 1
    assert stats.job_types["st"]["total-jobs"] == 2
    assert stats.counters["completed"] == 1
    assert stats.counters["added"] == 2
    assert "id" in stats.server
    assert stats.stored is None


def test_job_stats_by_id_and_missing_job(queue: KQueue) -> None:
    job_id = queue.add_job("js", 1, priority=42, ttr=77)
    stats = queue.job_stats(job_id)
    assert (stats["pri"], stats["ttr"], stats["tube"], stats["state"]) == (42, 77, "kq-js", "ready")
    from kqueue import JobNotFoundError

    with pytest.raises(JobNotFoundError):
        queue.job_stats(10**9)
