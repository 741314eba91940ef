"""Running reserved jobs: body -> record -> handler -> outcome, a window at a time.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kqueue.broker import BeanstalkConnection, ReservedJob
from kqueue.errors import KQueueError, PayloadError
from kqueue.hooks import HookChain
from kqueue.job import Job
from kqueue.pipeline import delete_jobs
from kqueue.retry import RetryPolicy
from kqueue.serialization import Body, CodecRegistry, decode_body
from kqueue.stores.base import JobRecord, RecordStatus, Store

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


class _Acks:
    """Jobs dropped unrun whose deletes are sent together: record keys and beanstalkd ids."""

    __slots__ = ("ids", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ids: list[int] = []

    def add(self, job_id: int, key: str | None, ttr: int) -> None:
        self.ids.append(job_id)
        if key is not None:
            self.keys.append(key)


class AckFlusher:
    """Sends the deletes of finished jobs from a background thread while the next handler runs.

    :meth:`add` hands a finished job over; the thread takes everything handed over so far (so
    batches form while it is busy), deletes the records in one store call, then the jobs in
    one pipelined burst on the connection that reserved them, whose lock serialises the burst
    with the handler thread's own commands. A delete thus goes out within about one round trip
    of its handler returning, however long the next handler runs (it may outlast the finished
    job's TTR). :meth:`drain` waits until everything handed over is sent: the runner calls it
    before a window ends, so no delete ever waits behind a blocking reserve.

    Errors are logged, never raised: a lost connection releases the jobs, whose records are
    gone (they are dropped as stale when they come back); records the store failed to delete
    stay, and their jobs are released to run again. The daemon thread starts with the first
    job and stops on :meth:`close` (after sending what it holds); a later job starts it again.
    """

    def __init__(self, store: Store | None) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._pending: list[tuple[BeanstalkConnection, Job]] = []
        self._busy = 0
        self._thread: threading.Thread | None = None

    def add(self, conn: BeanstalkConnection, job: Job) -> None:
        """Delete ``job`` (reserved on ``conn``) soon: its record first, then the job."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kqueue-acks", daemon=True)
                self._thread.start()
            self._pending.append((conn, job))
            if len(self._pending) == 1:  # else the thread was told already, and will look
                self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every job handed over has been deleted (or its delete has failed)."""
        with self._cond:
            while self._pending or self._busy:
                self._cond.wait()

    def close(self) -> None:
        """Send what is pending, then stop the thread."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._pending and self._thread is me:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
                self._busy += 1
            try:
                self._send(batch)
            except Exception:  # the thread must outlive anything
                logger.exception("deleting %d finished job(s) failed", len(batch))
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _send(self, batch: list[tuple[BeanstalkConnection, Job]]) -> None:
        keys = [job.key for _, job in batch if job.stored]
        kept = False
        if keys and self.store is not None:
            try:
                self.store.delete_many(keys)
            except KQueueError as exc:
                kept = True
                logger.error("cannot delete %d finished job record(s): %s", len(keys), exc)
        by_conn: dict[BeanstalkConnection, list[Job]] = {}
        for conn, job in batch:
            by_conn.setdefault(conn, []).append(job)
        for conn, jobs in by_conn.items():
            try:
                if kept:  # records still there: their jobs go back to run again
                    pipe = conn.pipeline()
                    for job in jobs:
                        if job.stored:
                            pipe.release(job.id, priority=job.priority, delay=0)
                        else:
                            pipe.delete(job.id)
                    pipe.execute()
                else:
                    delete_jobs(conn, [job.id for job in jobs])
            except KQueueError as exc:
                logger.warning("deletes of finished jobs on %s failed: %s", conn.address, exc)


class JobRunner:
    """Turns reserved beanstalkd jobs into handler calls and settles their outcomes.

    A window of jobs reserved together is run in order: their records come from the store in
    one round trip. A finished job is handed to the :class:`AckFlusher`, which deletes it
    (record first, then beanstalkd) while the next handler runs; the window ends once every
    delete went out. Jobs dropped without running are deleted together.
    """

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
        self.acks = AckFlusher(store)

    def close(self) -> None:
        """Send the pending deletes and stop the flusher's thread."""
        self.acks.close()

    def run(self, conn: BeanstalkConnection, reserved: ReservedJob) -> bool:
        """Process one reserved job; True if a handler ran."""
        return self.run_window(conn, [reserved], reserved_at=time.monotonic()) == 1

    def run_window(
        self,
        conn: BeanstalkConnection,
        window: Sequence[ReservedJob],
        *,
        reserved_at: float,
        should_stop: Callable[[], bool] = lambda: False,
        drain: bool = True,
    ) -> int:
        """Run jobs reserved together (at ``reserved_at``) in order; how many handlers ran.

        A job not started within half its TTR of the reserve, and every job left when
        ``should_stop()`` turns true, is released untouched for another worker. With
        ``drain`` False the last deletes may still be going out on return: the caller must
        call :meth:`drain` before a reserve that may block (run_jobs does).
        """
        jobs = self._prepare_window(conn, window)
        ran = 0
        try:
            for index, job in enumerate(jobs):
                if job is None:
                    continue
                late = time.monotonic() - reserved_at > job.ttr / 2
                if late or (ran and should_stop()):
                    self._hand_back(conn, jobs[index:])
                    break
                spec = self.handlers.get(job.job_type)
                if spec is None:
                    self._no_handler(conn, job)
                    continue
                self._call_handler(conn, job, spec)
                ran += 1
        finally:
            if drain:
                self.acks.drain()
        return ran

    def drain(self) -> None:
        """Wait until the deletes of every finished job went out (before a blocking reserve,
        which holds the connection the deletes need)."""
        self.acks.drain()

    def _no_handler(self, conn: BeanstalkConnection, job: Job) -> None:
        """A job whose type has no handler here: its handler was removed after the reserve
        (hand it back untouched), or its body names a type its tube is not (bury it)."""
        stats = conn.stats_job(job.id) or {}
        if stats.get("tube") == self.tube_prefix + job.job_type:
            conn.release(job.id, priority=job.priority, delay=0)
        else:
            self._bury_unreadable(conn, job.id, f"body names job type {job.job_type!r}")

    def _hand_back(self, conn: BeanstalkConnection, jobs: Sequence[Job | None]) -> None:
        pipe = conn.pipeline()
        for job in jobs:
            if job is not None:
                pipe.release(job.id, priority=job.priority, delay=0)
        self.counters["window_released"] += len(pipe)
        pipe.execute()

    def _flush(self, conn: BeanstalkConnection, acks: _Acks) -> None:
        """Delete finished jobs: their records first, so a crash in between never reruns one."""
        if not acks.ids:
            return
        keys, ids = acks.keys, acks.ids
        acks.keys, acks.ids = [], []
        if keys and self.store is not None:
            self.store.delete_many(keys)
        delete_jobs(conn, ids)

    def _prepare_window(
        self, conn: BeanstalkConnection, window: Sequence[ReservedJob]
    ) -> list[Job | None]:
        bodies = [decode_body(reserved.body) for reserved in window]
        records: dict[str, JobRecord | RecordStatus] = {}
        server_id = ""
        if self.store is not None:
            # One round trip for the window: payloads where only the store has them, else
            # just the statuses (the record must still exist, and its attempts count).
            copies = [body.key for body in bodies if body is not None and body.mode == "s"]
            refs = [body.key for body in bodies if body is not None and body.mode == "r"]
            if copies:
                records.update(self.store.get_status_many(copies))
            if refs:
                records.update(self.store.get_many(refs))
            if copies or refs:
                server_id = conn.server_id()
        dropped = _Acks()
        jobs = [
            self._prepare(conn, reserved, body, records, server_id, dropped)
            for reserved, body in zip(window, bodies, strict=True)
        ]
        self._flush(conn, dropped)
        return jobs

    def _prepare(
        self,
        conn: BeanstalkConnection,
        reserved: ReservedJob,
        body: Body | None,
        records: dict[str, JobRecord | RecordStatus],
        server_id: str,
        dropped: _Acks,
    ) -> Job | None:
        if body is None:
            self._bury_unreadable(conn, reserved.id, "foreign or corrupt job body")
            return None
        attempts: int | None = None
        payload = body.payload
        if body.stored:
            if self.store is None:
                why = "a store reference, but this queue has no store"
                self._bury_unreadable(conn, reserved.id, why)
                return None
            record = records.get(body.key)
            if not self._runnable(reserved.id, body.key, record, server_id, dropped):
                return None
            assert record is not None
            attempts = record.attempts + 1
            if isinstance(record, JobRecord):
                payload = record.payload
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
            stored=body.stored,
            _attempts=attempts,
            _count_attempts=(
                None if attempts is not None else lambda: _attempts_from_broker(conn, reserved.id)
            ),
            _connection=conn,
        )

    def _runnable(
        self,
        job_id: int,
        key: str,
        record: JobRecord | RecordStatus | None,
        server_id: str,
        dropped: _Acks,
    ) -> bool:
        """False (and the job dropped) when the record is gone or names another job."""
        if record is None:
            # Done or purged already: the reference is stale. Never run it.
            dropped.add(job_id, None, 1)
            self.counters["stale_dropped"] += 1
            logger.info("job %s key=%s: record gone, reference dropped", job_id, key)
            return False
        current = record.ref
        if current is not None and current.server_id == server_id and current.job_id != job_id:
            # Another job on this very server carries the record (recovery re-enqueued it
            # while this one was thought lost): this one is a duplicate delivery. A reference
            # naming another server proves nothing (a binlog restart renames the server).
            dropped.add(job_id, None, 1)
            self.counters["duplicates_dropped"] += 1
            logger.warning("job %s key=%s: duplicate reference dropped", job_id, key)
            return False
        return True

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
                "job %s type=%s attempt %d failed: %s",
                job.id,
                job.job_type,
                job.attempts,
                describe_error(exc),
            )
            if not job.finished:
                self._settle_failure(conn, job, spec.retry or self.retry, exc)
            self.hooks.on_failure(job, exc, seconds)
            return
        seconds = time.perf_counter() - started
        if toucher is not None:
            toucher.stop()
        if not job.finished:
            job.outcome = "deleted"
            self.acks.add(conn, job)
        self.counters["completed"] += 1
        logger.debug("job %s type=%s done in %.3f ms", job.id, job.job_type, seconds * 1000)
        self.hooks.after_job(job, seconds)

    def _settle_failure(
        self, conn: BeanstalkConnection, job: Job, policy: RetryPolicy, exc: Exception
    ) -> None:
        error = describe_error(exc)
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
                # The count could not be kept on the record: beanstalkd's own counters of
                # this job bound the retries instead, so it cannot retry forever uncounted.
                logger.error("job %s: cannot record the failure: %s", job.id, store_exc)
                bury = bury or policy.should_bury(_attempts_from_broker(conn, job.id))
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


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for logs and records: bounded, no NUL bytes, never raises."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ itself fails
        text = f"{type(exc).__name__}: <unprintable>"
    return text.replace("\x00", "\\x00")[:MAX_ERROR_TEXT]


def _attempts_from_broker(conn: BeanstalkConnection, job_id: int) -> int:
    stats = conn.stats_job(job_id) or {}
    return _int(stats.get("releases")) + _int(stats.get("timeouts")) + 1


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
