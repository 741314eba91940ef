"""Running one reserved job: body -> record -> handler -> outcome.

The outcome rules: a handler that returns has its job deleted (unless it already deleted,
released or buried it); a handler that raises has its job released with a backoff delay, or
buried once its retry budget is spent. A body kqueue cannot read is buried and logged. A
reference whose record is gone (done or purged already) is deleted without running anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kqueue.broker import BeanstalkConnection, ReservedJob
from kqueue.errors import KQueueError, PayloadError
from kqueue.hooks import HookChain
from kqueue.job import Job
from kqueue.retry import RetryPolicy
from kqueue.serialization import CodecRegistry, decode_body
from kqueue.stores.base import Store

logger = logging.getLogger("kqueue")

Handler = Callable[[Job], Any]
MAX_ERROR_TEXT = 2000


@dataclass(frozen=True)
class HandlerSpec:
    """A registered handler, its own retry policy (None: the queue's), and whether its jobs
    are touched automatically while it runs (for handlers that may outlast the TTR)."""

    handler: Handler
    retry: RetryPolicy | None = None
    auto_touch: bool = False


class AutoToucher:
    """Touches a reserved job every half TTR from a thread, until stopped."""

    def __init__(self, conn: BeanstalkConnection, job: Job) -> None:
        self._conn = conn
        self._job = job
        self._done = threading.Event()
        self.touches = 0
        self._thread = threading.Thread(target=self._run, name=f"kqueue-touch-{job.id}")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        interval = max(0.2, self._job.ttr / 2)
        while not self._done.wait(interval):
            try:
                if not self._conn.touch(self._job.id):
                    return
                self.touches += 1
            except KQueueError as exc:
                logger.warning("job %s: automatic touch failed: %s", self._job.id, exc)
                return

    def stop(self) -> None:
        """Stop touching and wait for the thread."""
        self._done.set()
        self._thread.join()


class JobRunner:
    """Turns a reserved beanstalkd job into a handler call and settles its outcome."""

    def __init__(
        self,
        *,
        store: Store | None,
        codecs: CodecRegistry,
        handlers: dict[str, HandlerSpec],
        retry: RetryPolicy,
        tube_prefix: str,
        counters: Counter[str],
        hooks: HookChain,
    ) -> None:
        self.store = store
        self.codecs = codecs
        self.handlers = handlers
        self.retry = retry
        self.tube_prefix = tube_prefix
        self.counters = counters
        self.hooks = hooks

    def run(self, conn: BeanstalkConnection, reserved: ReservedJob) -> bool:
        """Process one reserved job; True if a handler ran."""
        job = self._prepare(conn, reserved)
        if job is None:
            return False
        spec = self.handlers.get(job.job_type)
        if spec is None:
            # The handler was removed after the reserve: hand the job back untouched.
            conn.release(job.id, priority=job.priority, delay=0)
            return False
        self._call_handler(conn, job, spec)
        return True

    def _prepare(self, conn: BeanstalkConnection, reserved: ReservedJob) -> Job | None:
        body = decode_body(reserved.body)
        if body is None:
            self._bury_unreadable(conn, reserved.id, "foreign or corrupt job body")
            return None
        attempts: int | None = None
        payload = body.payload
        if body.mode == "r":
            record = self._fetch_record(conn, reserved.id, body.key)
            if record is None:
                return None
            payload, attempts = record.payload, record.attempts + 1
        try:
            data = self.codecs.decode(body.codec, payload)
        except PayloadError as exc:
            self._bury_unreadable(conn, reserved.id, str(exc))
            return None
        return Job(
            id=reserved.id,
            job_type=body.job_type,
            data=data,
            priority=body.priority,
            ttr=body.ttr,
            key=body.key,
            stored=body.mode == "r",
            _attempts=attempts,
            _count_attempts=lambda: _attempts_from_broker(conn, reserved.id),
            _connection=conn,
        )

    def _fetch_record(self, conn: BeanstalkConnection, job_id: int, key: str) -> Any:
        if self.store is None:
            self._bury_unreadable(conn, job_id, "a store reference, but this queue has no store")
            return None
        record = self.store.get(key)
        if record is None:
            # Done or purged already: the reference is stale. Never run it.
            conn.delete(job_id)
            self.counters["stale_dropped"] += 1
            logger.info("job %s key=%s: record gone, reference dropped", job_id, key)
            return None
        current = record.ref
        server_id = conn.server_id()
        if current is not None and current.server_id == server_id and current.job_id != job_id:
            # Another job on this very server carries the record (recovery re-enqueued it
            # while this one was thought lost): this one is a duplicate delivery. A reference
            # naming another server proves nothing (a binlog restart renames the server).
            conn.delete(job_id)
            self.counters["duplicates_dropped"] += 1
            logger.warning("job %s key=%s: duplicate reference dropped", job_id, key)
            return None
        return record

    def _bury_unreadable(self, conn: BeanstalkConnection, job_id: int, why: str) -> None:
        stats = conn.stats_job(job_id) or {}
        conn.bury(job_id, priority=_int(stats.get("pri")))
        self.counters["unreadable_buried"] += 1
        logger.error("job %s in tube %s buried: %s", job_id, stats.get("tube", "?"), why)

    def _call_handler(self, conn: BeanstalkConnection, job: Job, spec: HandlerSpec) -> None:
        self.hooks.before_job(job)
        toucher = AutoToucher(conn, job) if spec.auto_touch else None
        started = time.perf_counter()
        try:
            spec.handler(job)
        except Exception as exc:
            seconds = time.perf_counter() - started
            if toucher is not None:
                toucher.stop()
            self.counters["failed"] += 1
            logger.warning(
                "job %s type=%s attempt %d failed: %r", job.id, job.job_type, job.attempts, exc
            )
            if not job.finished:
                self._settle_failure(conn, job, spec.retry or self.retry, exc)
            self.hooks.on_failure(job, exc, seconds)
            return
        seconds = time.perf_counter() - started
        if toucher is not None:
            toucher.stop()
        if not job.finished:
            self.complete(conn, job)
        self.counters["completed"] += 1
        logger.debug("job %s type=%s done in %.3f ms", job.id, job.job_type, seconds * 1000)
        self.hooks.after_job(job, seconds)

    def complete(self, conn: BeanstalkConnection, job: Job) -> None:
        """Delete a finished job: its record first, so a crash in between never reruns it."""
        if job.stored and self.store is not None:
            self.store.delete(job.key)
        conn.delete(job.id)
        job.outcome = "deleted"

    def _settle_failure(
        self, conn: BeanstalkConnection, job: Job, policy: RetryPolicy, exc: Exception
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_TEXT]
        bury = policy.should_bury(job.attempts)
        if job.stored and self.store is not None:
            try:
                self.store.record_attempt(
                    job.key,
                    attempts=job.attempts,
                    last_error=error,
                    state="buried" if bury else "enqueued",
                    now=time.time(),
                )
            except KQueueError as store_exc:
                logger.error("job %s: cannot record the failure: %s", job.id, store_exc)
        if bury:
            conn.bury(job.id, priority=job.priority)
            job.outcome = "buried"
            self.counters["buried"] += 1
            logger.error(
                "job %s type=%s buried after %d attempts: %s",
                job.id,
                job.job_type,
                job.attempts,
                error,
            )
        else:
            delay = policy.delay_for(job.attempts)
            conn.release(job.id, priority=job.priority, delay=delay)
            job.outcome = "released"
            self.counters["retried"] += 1


def _attempts_from_broker(conn: BeanstalkConnection, job_id: int) -> int:
    stats = conn.stats_job(job_id) or {}
    return _int(stats.get("releases")) + _int(stats.get("timeouts")) + 1


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
