"""Middleware: typed no-op methods, one per event of a job's life, that a subclass overrides.

::

    class Timing(Middleware):
        def after_job(self, job, seconds):
            statsd.timing(f"job.{job.job_type}", seconds)

    queue = KQueue(..., middleware=[Timing()])

The events, in the order a job meets them:

- ``after_enqueue``: add_job / add_jobs accepted jobs (and how many beanstalkd did not take);
- ``before_job``: the handler is about to run. Raising :class:`Fail` here buries the job
  without running it, :class:`SkipJob` deletes it without running it;
- ``after_handler``: the handler returned or raised; its outcome is not settled yet;
- ``decide_failure``: the handler raised: set the :class:`Failure`'s outcome (retry after a
  delay, or bury). :class:`~kqueue.middleware.retries.Retries` does it by default;
- ``after_job`` (it succeeded) or ``on_failure`` (it raised; ``job.outcome`` tells what
  followed), then ``on_retried`` or ``on_buried``;
- ``on_dropped``: a reserved job that was not run (its record gone, a duplicate delivery, an
  unreadable body, handed back unstarted);
- ``on_recovered`` and ``after_sweep``: the recovery sweeper put a lost job back; a pass ended.

Apart from :class:`Fail` and :class:`SkipJob` from ``before_job``, whatever a middleware
raises is logged and ignored: middleware never breaks a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kqueue.job import Job

if TYPE_CHECKING:
    from kqueue.retry import RetryPolicy
    from kqueue.stores.base import JobRecord
    from kqueue.sweeper import SweepReport

logger = logging.getLogger("kqueue")

DropReason = Literal["stale", "duplicate", "unreadable", "handed_back", "skipped"]
"""Why a reserved job was not run: its record is gone; another copy of it carries the record;
its body cannot be read (buried); it was handed back unstarted; a middleware skipped it."""


class Fail(Exception):
    """Raised by a handler (or a middleware's ``before_job``): bury the job now, no retry.

    The message is recorded as the reason."""


class SkipJob(Exception):
    """Raised by a middleware's ``before_job``: delete the job without running its handler."""


@dataclass
class Failure:
    """A handler's failure, and what happens to the job: ``bury``, or release after ``delay``.

    ``policy`` is the handler's own retry policy (None: the queue's). Middleware set the
    outcome in ``decide_failure``; the last one to set it wins.
    """

    job: Job
    error: BaseException
    policy: RetryPolicy | None
    bury: bool = False
    delay: int = 0
    reason: str = ""


class Middleware:
    """Called around every job and every recovery. Every method is a no-op here."""

    def after_enqueue(self, job_type: str, count: int, unscheduled: int) -> None:
        """``count`` jobs were accepted; ``unscheduled`` of them are not in beanstalkd yet."""

    def before_job(self, job: Job) -> None:
        """The handler is about to run (raise :class:`Fail` or :class:`SkipJob` to stop it)."""

    def after_handler(self, job: Job, error: BaseException | None) -> None:
        """The handler returned (``error`` None) or raised; the outcome is not settled yet."""

    def decide_failure(self, failure: Failure) -> None:
        """Set what happens to a failed job (``failure.bury``, ``failure.delay``)."""

    def after_job(self, job: Job, seconds: float) -> None:
        """The handler returned after ``seconds``."""

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        """The handler raised ``error`` after ``seconds``; see ``job.outcome`` for what followed."""

    def on_retried(self, job: Job, delay: int) -> None:
        """A failed job was released to run again after ``delay`` seconds."""

    def on_buried(self, job: Job, reason: str) -> None:
        """A job was buried as a dead letter."""

    def on_dropped(self, job_id: int, key: str | None, reason: DropReason) -> None:
        """A reserved job was not run (see :data:`DropReason`)."""

    def on_recovered(self, record: JobRecord, job_id: int) -> None:
        """The sweeper put a job beanstalkd had lost back, as ``job_id``."""

    def after_sweep(self, report: SweepReport) -> None:
        """A recovery pass ended."""


class Hooks(Middleware):
    """The first name of :class:`Middleware`, kept for the applications that subclass it
    (``before_job``, ``after_job``, ``on_failure``)."""


class MiddlewareChain(Middleware):
    """Calls several middleware in order, logging (never raising) what they raise."""

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = list(middleware)

    def add(self, middleware: Middleware) -> None:
        """Append one more middleware."""
        self.middleware.append(middleware)

    def _each(self, event: str, *args: object) -> None:
        for middleware in self.middleware:
            try:
                getattr(middleware, event)(*args)
            except Exception:
                logger.exception("middleware %r failed in %s", middleware, event)

    def before_job(self, job: Job) -> None:
        for middleware in self.middleware:
            try:
                middleware.before_job(job)
            except (Fail, SkipJob):
                raise
            except Exception:
                logger.exception("middleware %r failed in before_job", middleware)

    def after_enqueue(self, job_type: str, count: int, unscheduled: int) -> None:
        self._each("after_enqueue", job_type, count, unscheduled)

    def after_handler(self, job: Job, error: BaseException | None) -> None:
        self._each("after_handler", job, error)

    def decide_failure(self, failure: Failure) -> None:
        self._each("decide_failure", failure)

    def after_job(self, job: Job, seconds: float) -> None:
        self._each("after_job", job, seconds)

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        self._each("on_failure", job, error, seconds)

    def on_retried(self, job: Job, delay: int) -> None:
        self._each("on_retried", job, delay)

    def on_buried(self, job: Job, reason: str) -> None:
        self._each("on_buried", job, reason)

    def on_dropped(self, job_id: int, key: str | None, reason: DropReason) -> None:
        self._each("on_dropped", job_id, key, reason)

    def on_recovered(self, record: JobRecord, job_id: int) -> None:
        self._each("on_recovered", record, job_id)

    def after_sweep(self, report: SweepReport) -> None:
        self._each("after_sweep", report)
