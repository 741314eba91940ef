"""A worker stopped by a signal that arrives while it is still starting (its handlers are
installed, its run loop not yet entered) stops at once instead of running until the grace
period forces it: a deploy that stops a worker right after starting it must not wait 30 s."""

from __future__ import annotations

import logging
import os
import signal
import threading

from kqueue import KQueue
from kqueue.worker import EXIT_OK, Worker


class _SignalOnStart(logging.Handler):
    """Sends SIGINT to this process when the worker logs that it started: after its signal
    handlers are installed and before its run loop begins."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("worker started"):
            os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_during_start_up_stops_the_worker_without_running_jobs(queue: KQueue) -> None:
    assert threading.current_thread() is threading.main_thread()  # signals go to this thread
    ran: list[object] = []
    queue.add_handler("w", lambda job: ran.append(job.data))
    job_id = queue.add_job("w", 1)
    worker = Worker(queue, grace_period=5)
    hook = _SignalOnStart()
    logger = logging.getLogger("kqueue")
    logger.addHandler(hook)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        code = worker.run()
    finally:
        logger.removeHandler(hook)
        logger.setLevel(old_level)
    assert code == EXIT_OK  # stopped gracefully, not forced when the grace period ran out
    assert ran == [] and worker.jobs_run == 0
    assert queue.job_stats(job_id)["state"] == "ready"  # left for the next worker


def test_a_stop_event_set_before_run_jobs_stops_it_before_any_job(queue: KQueue) -> None:
    ran: list[object] = []
    queue.add_handler("w", lambda job: ran.append(job.data))
    queue.add_job("w", 1)
    stop = threading.Event()
    stop.set()
    assert queue.run_jobs(stop_event=stop) == 0
    assert ran == []
    assert queue.run_jobs(time_limit_ms=0) == 1  # a later run without it runs as usual
