"""``kqueue scheduler MODULE:ATTRIBUTE``: add the jobs of an application's periodic schedules."""

from __future__ import annotations

import argparse
import signal
import threading

from kqueue.cli.config import Settings
from kqueue.errors import ConfigurationError
from kqueue.queue import KQueue
from kqueue.scheduler import Scheduler

__all__ = ["check_schedules", "cmd_scheduler"]


def check_schedules(queue: KQueue) -> None:
    """ConfigurationError unless the queue has schedules and a store to decide their ticks."""
    if not queue.periodic:
        raise ConfigurationError(
            "the application declares no periodic jobs: queue.add_periodic(job_type, cron)"
        )
    if queue.store is None:
        raise ConfigurationError(
            "periodic jobs need a bulk store (it decides each tick's one job): "
            "--store, KQUEUE_STORE or the app"
        )


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    """Add the job of each tick of every schedule until SIGINT/SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with settings.open_queue() as queue:
        check_schedules(queue)
        names = ", ".join(f"{s.name} ({s.cron} {s.tz})" for s in queue.periodic.values())
        print(f"scheduler: {names}", flush=True)
        scheduler = Scheduler(queue, grace=args.grace).start()
        stop.wait()
        scheduler.stop()
    print(f"scheduler stopped after {scheduler.fired} tick(s)")
    return 0
