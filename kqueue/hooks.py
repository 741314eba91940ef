"""Hooks: typed no-op methods a subclass overrides to log, trace or measure jobs.

::

    class Timing(Hooks):
        def after_job(self, job, seconds):
            statsd.timing(f"job.{job.job_type}", seconds)

    queue = KQueue(..., hooks=[Timing()])

A hook that raises is logged and ignored: hooks never change a job's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kqueue.job import Job

logger = logging.getLogger("kqueue")


class Hooks:
    """Called around every job a worker runs. Every method is a no-op here."""

    def before_job(self, job: Job) -> None:
        """The handler is about to run."""

    def after_job(self, job: Job, seconds: float) -> None:
        """The handler returned after ``seconds``."""

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        """The handler raised ``error`` after ``seconds``; see ``job.outcome`` for what followed."""


class HookChain(Hooks):
    """Calls several hooks in order, logging (never raising) what they raise."""

    def __init__(self, hooks: Sequence[Hooks] = ()) -> None:
        self.hooks = list(hooks)

    def add(self, hooks: Hooks) -> None:
        """Append one more set of hooks."""
        self.hooks.append(hooks)

    def before_job(self, job: Job) -> None:
        for hook in self.hooks:
            try:
                hook.before_job(job)
            except Exception:
                logger.exception("hook %r failed in before_job", hook)

    def after_job(self, job: Job, seconds: float) -> None:
        for hook in self.hooks:
            try:
                hook.after_job(job, seconds)
            except Exception:
                logger.exception("hook %r failed in after_job", hook)

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        for hook in self.hooks:
            try:
                hook.on_failure(job, error, seconds)
            except Exception:
                logger.exception("hook %r failed in on_failure", hook)
