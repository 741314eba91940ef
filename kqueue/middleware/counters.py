"""Counters: how many jobs met each event, in one :class:`collections.Counter`."""

from __future__ import annotations

from collections import Counter

from kqueue.job import Job
from kqueue.middleware.base import DropReason, Middleware
from kqueue.stores.base import JobRecord

_DROPPED = {
    "stale": "stale_dropped",
    "duplicate": "duplicates_dropped",
    "unreadable": "unreadable_buried",
    "handed_back": "window_released",
    "skipped": "skipped",
}


class Counters(Middleware):
    """Counts ``added``, ``added_unscheduled``, ``completed``, ``failed``, ``retried``,
    ``buried``, ``recovered`` and the dropped jobs by reason (``stale_dropped``,
    ``duplicates_dropped``, ``unreadable_buried``, ``window_released``, ``skipped``)."""

    def __init__(self, counts: Counter[str] | None = None) -> None:
        self.counts: Counter[str] = counts if counts is not None else Counter()

    def after_enqueue(self, job_type: str, count: int, unscheduled: int) -> None:
        self.counts["added"] += count
        if unscheduled:
            self.counts["added_unscheduled"] += unscheduled

    def after_job(self, job: Job, seconds: float) -> None:
        self.counts["completed"] += 1

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        self.counts["failed"] += 1

    def on_retried(self, job: Job, delay: int) -> None:
        self.counts["retried"] += 1

    def on_buried(self, job: Job, reason: str) -> None:
        self.counts["buried"] += 1

    def on_dropped(self, job_id: int, key: str | None, reason: DropReason) -> None:
        self.counts[_DROPPED[reason]] += 1

    def on_recovered(self, record: JobRecord, job_id: int) -> None:
        self.counts["recovered"] += 1
