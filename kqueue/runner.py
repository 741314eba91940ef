"""Running reserved jobs: body -> record -> handler -> outcome, a window at a time.

The outcome rules: a handler that returns has its job deleted (unless it already deleted,
released or buried it); a handler that raises has its job's outcome decided by the
middleware (by default :class:`~kqueue.middleware.retries.Retries`: released with a backoff
delay, or buried once its retry budget is spent). A body kqueue cannot read is buried and
logged. A reference whose record is gone (done or purged already) is deleted without running
anything (the window is read and checked by :mod:`kqueue.prepare`, by the rules of
:mod:`kqueue.run_rules`). Every step is announced to the middleware (see
:mod:`kqueue.middleware.base`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kqueue.acks import AckFlusher
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline
from kqueue.beanstalk.wire import ReservedJob
from kqueue.errors import KQueueError, PayloadError, StoreError
from kqueue.job import Job
from kqueue.lane_gate import LaneGate
from kqueue.middleware.base import Fail, Failure, Middleware, SkipJob
from kqueue.prepare import WindowPreparer
from kqueue.results import attempt_failure, keep_result, record_failure, worker_name
from kqueue.retry import RetryPolicy
from kqueue.run_rules import (
    MAX_ERROR_TEXT,
    attempts_for,
    describe_error,
    doubtful_copies,
    job_fields,
    log_buried,
    log_failed,
    log_skipped,
    never_finished,
    trust_whole,
    why_not_runnable,
    why_unreadable,
)
from kqueue.serialization import CodecRegistry
from kqueue.stores.base import (
    AttemptFailure,
    Store,
)

__all__ = [
    "MAX_ERROR_TEXT",
    "Handler",
    "HandlerSpec",
    "JobRunner",
    "attempts_for",
    "attempts_from_broker",
    "describe_error",
    "doubtful_copies",
    "job_fields",
    "trust_whole",
    "why_not_runnable",
    "why_unreadable",
]

logger = logging.getLogger("kqueue")

Handler = Callable[[Job], Any]


@dataclass(frozen=True)
class HandlerSpec:
    """A registered handler, its own retry policy (None: the queue's), whether its jobs
    are touched automatically while it runs (for handlers that may outlast the TTR), and for
    how many seconds its jobs' outcomes are kept (None: not kept)."""

    handler: Handler
    retry: RetryPolicy | None = None
    auto_touch: bool = False
    keep_result: float | None = None


class JobRunner:
    """Turns reserved beanstalkd jobs into handler calls and settles their outcomes.

    A window of jobs reserved together is run in order: their records come from the store in
    one round trip. A finished job is handed to the :class:`~kqueue.acks.AckFlusher`, which
    deletes it (record first, then beanstalkd) while the next handler runs. Jobs dropped
    without running are deleted together.
    """

    def __init__(
        self,
        *,
        store: Store | None,
        codecs: CodecRegistry,
        handlers: Mapping[str, HandlerSpec],
        tube_prefix: str,
        retry: RetryPolicy,
        events: Middleware,
        inspector: BeanstalkConnection | None = None,
        lanes: LaneGate | None = None,
    ) -> None:
        self.store = store
        self.lanes = lanes
        """With lanes: decides what to do with a job not to be run here."""
        self.retry = retry
        self.codecs = codecs
        self.handlers = handlers
        self.events = events
        self.acks = AckFlusher(store)
        self.preparer = WindowPreparer(
            store=store,
            codecs=codecs,
            handlers=handlers,
            tube_prefix=tube_prefix,
            events=events,
            inspector=inspector,
            lanes=lanes,
        )

    @property
    def only(self) -> frozenset[str] | None:
        """The job types this run is limited to (None: every handler's)."""
        return self.preparer.only

    @only.setter
    def only(self, job_types: frozenset[str] | None) -> None:
        self.preparer.only = job_types

    def close(self) -> None:
        """Send the pending deletes, stop the flusher's thread, close the inspector."""
        self.acks.close()
        self.preparer.close()

    def drain(self) -> None:
        """Wait until the deletes of every finished job went out (before a blocking reserve,
        which holds the connection the deletes need)."""
        self.acks.drain()

    def run_window(
        self,
        conn: BeanstalkConnection,
        window: Sequence[ReservedJob],
        *,
        reserved_at: float,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Run jobs reserved together (at ``reserved_at``) in order; how many handlers ran.

        A job not started within half its TTR of the reserve, and every job left when
        ``should_stop()`` turns true, is handed back untouched for another worker. The last
        deletes may still be going out on return: the caller calls :meth:`drain` before a
        reserve that may block.
        """
        return self._run_jobs(self.preparer.prepare(conn, window), reserved_at, should_stop)

    def run_parts(
        self,
        parts: Sequence[tuple[BeanstalkConnection, Sequence[ReservedJob]]],
        *,
        reserved_at: float,
        should_stop: Callable[[], bool] = lambda: False,
        bond: frozenset[str] = frozenset(),
    ) -> int:
        """:meth:`run_window` for a window reserved on several servers (each part on its
        own connection): every part prepared (one store read each), then all its jobs run
        most urgent first (a stable sort: each server's own order among equals). ``bond``:
        the ids of the queue's servers connected now (a copy whose record names another of
        them is a duplicate: see :func:`why_not_runnable`)."""
        prepared: list[Job | None] = []
        try:
            for conn, window in parts:
                prepared += self.preparer.prepare(conn, window, bond)
        except StoreError:
            self._hand_back(prepared)  # released, not closed: no attempt counted (see above)
            raise
        jobs = [job for job in prepared if job is not None]
        jobs.sort(key=lambda job: job.priority)
        return self._run_jobs(list(jobs), reserved_at, should_stop)

    def _run_jobs(
        self, jobs: Sequence[Job | None], reserved_at: float, should_stop: Callable[[], bool]
    ) -> int:
        ran = 0
        for index, job in enumerate(jobs):
            if job is None:
                continue
            late = time.monotonic() - reserved_at > job.ttr / 2
            if late or (ran and should_stop()):
                self._hand_back(jobs[index:])
                break
            conn = job.connection
            assert conn is not None  # every job of a window was reserved on one
            spec = self.handlers.get(job.job_type)
            if spec is None:
                self._no_handler(conn, job)
                continue
            self._call_handler(conn, job, spec)
            ran += 1
        self.preparer.release_at_start.clear()  # jobs handed back keep their keys until they start
        return ran

    def _no_handler(self, conn: BeanstalkConnection, job: Job) -> None:
        """A job whose handler was removed after the reserve: handed back untouched (a body
        naming another tube's type was buried before, as unreadable)."""
        conn.release(job.id, priority=job.priority, delay=0)

    def _hand_back(self, jobs: Sequence[Job | None]) -> None:
        """Release untouched jobs, each on the connection that reserved it."""
        by_conn: dict[BeanstalkConnection, Pipeline] = {}
        for job in jobs:
            if job is not None and job.connection is not None:
                pipe = by_conn.get(job.connection)
                if pipe is None:
                    pipe = by_conn[job.connection] = Pipeline(job.connection)
                pipe.release(job.id, priority=job.priority, delay=0)
                self.events.on_dropped(job.id, job.key, "handed_back")
        for pipe in by_conn.values():
            pipe.execute()

    # -- the handler and its outcome -------------------------------------------------------

    def _call_handler(self, conn: BeanstalkConnection, job: Job, spec: HandlerSpec) -> None:
        policy = spec.retry or self.retry
        if job.attempts > policy.max_attempts:
            self._bury_poison(conn, job, policy)
            return
        try:
            self.events.before_job(job)
        except (Fail, SkipJob) as stopped:
            self.events.after_handler(job, stopped)
            self._stopped_before(conn, job, spec, stopped)
            return
        self._release_unique(job)
        started = time.perf_counter()
        try:
            self._invoke(job, spec)
        except Exception as exc:
            seconds = time.perf_counter() - started
            self.events.after_handler(job, exc)
            log_failed(job, exc, seconds)
            if not job.finished:
                self._settle_failure(conn, job, spec, exc)
            self.events.on_failure(job, exc, seconds)
            return
        seconds = time.perf_counter() - started
        self.events.after_handler(job, None)
        if not job.finished:
            job.outcome = "deleted"
            self.acks.add(conn, job)
        _log_done(job, seconds)
        self.events.after_job(job, seconds)

    def _release_unique(self, job: Job) -> None:
        """Free the unique key a job holds until it starts (a failure to is logged: the key
        then stays held until the job finishes)."""
        unique_key = self.preparer.release_at_start.pop(job.key, None)
        if unique_key is None or self.store is None:
            return
        try:
            self.store.release_unique([(unique_key, job.key)])
        except KQueueError as exc:
            logger.warning("job %s: cannot release unique key %r: %s", job.id, unique_key, exc)

    def _invoke(self, job: Job, spec: HandlerSpec) -> None:
        """Run the handler, and keep its return value when its type keeps results (a value
        that cannot be kept fails the job at once: running it again would not help)."""
        value = _finish(spec.handler(job))
        if spec.keep_result is not None and self.store is not None:
            try:
                keep_result(self.store, self.codecs, job.key, value, spec.keep_result)
            except PayloadError as exc:
                raise Fail(str(exc)) from exc

    def _record_failure(
        self, job: Job, failure: AttemptFailure, *, attempts: int, error: str, buried: bool
    ) -> None:
        """Count the attempt and keep its failure on the record (and, once buried, as the
        outcome of a type that keeps results). The caller handles a store error."""
        assert self.store is not None
        spec = self.handlers.get(job.job_type)
        keep_for = None if spec is None else spec.keep_result
        record_failure(
            self.store, job.key, failure, attempts=attempts, error=error, buried=buried,
            keep_for=keep_for,
        )  # fmt: skip

    def _bury_poison(self, conn: BeanstalkConnection, job: Job, policy: RetryPolicy) -> None:
        """A job whose earlier attempts never finished (its TTR ran out, or its worker died:
        a handler that kills its process) is buried once they spend its budget, unrun."""
        reason = never_finished(job, policy.max_attempts)
        if job.stored and self.store is not None:
            failure = AttemptFailure(
                time.time(), job.attempts - 1, worker_name(), "kqueue.NeverFinished", reason
            )
            self._record_failure(job, failure, attempts=job.attempts - 1, error=reason, buried=True)
        conn.bury(job.id, priority=job.priority)
        job.outcome = "buried"
        log_buried(job, reason)
        self.events.on_buried(job, reason)

    def _stopped_before(
        self, conn: BeanstalkConnection, job: Job, spec: HandlerSpec, stopped: Exception
    ) -> None:
        """A middleware stopped the job before its handler: skipped (deleted) or failed."""
        if isinstance(stopped, SkipJob):
            job.outcome = "deleted"
            self.acks.add(conn, job)
            self.events.on_dropped(job.id, job.key, "skipped")
            log_skipped(job, stopped)
        else:
            self._settle_failure(conn, job, spec, stopped)
            self.events.on_failure(job, stopped, 0.0)

    def _settle_failure(
        self, conn: BeanstalkConnection, job: Job, spec: HandlerSpec, exc: Exception
    ) -> None:
        failure = Failure(job, exc, spec.retry)
        self.events.decide_failure(failure)
        error = describe_error(exc)
        if job.stored and self.store is not None:
            try:
                self._record_failure(
                    job,
                    attempt_failure(exc, job.attempts),
                    attempts=job.attempts,
                    error=error,
                    buried=failure.bury,
                )
            except KQueueError as store_exc:
                # The count could not be kept on the record: beanstalkd's own counters of
                # this job bound the retries instead, so it cannot retry forever uncounted.
                logger.error("job %s: cannot record the failure: %s", job.id, store_exc)
                policy = spec.retry or self.retry
                if policy.should_bury(attempts_from_broker(conn, job.id)):
                    failure.bury, failure.reason = True, "retry budget spent (broker counters)"
        if failure.bury:
            conn.bury(job.id, priority=job.priority)
            job.outcome = "buried"
            log_buried(job, failure.reason, error)
            self.events.on_buried(job, failure.reason)
        else:
            conn.release(job.id, priority=job.priority, delay=failure.delay)
            job.outcome = "released"
            self.events.on_retried(job, failure.delay)


def _finish(result: object) -> object:
    """What a handler returned; an ``async def`` handler run by the sync worker is awaited to
    its end on a loop of its own (``kqueue worker --concurrency N`` runs many at once on one
    loop instead)."""
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    return result


def _log_done(job: Job, seconds: float) -> None:
    """A finished job: one DEBUG line (per-job lines would drown an INFO log)."""
    fields = job_fields(job, "completed", seconds)
    logger.debug(
        "job %s type=%s done in %.3f ms", job.id, job.job_type, seconds * 1000, extra=fields
    )


def attempts_from_broker(conn: BeanstalkConnection, job_id: int) -> int:
    """This run's attempt number from beanstalkd's counters of the job (releases, timeouts)."""
    stats = conn.stats_job(job_id) or {}
    return stats.get("releases", 0) + stats.get("timeouts", 0) + 1
