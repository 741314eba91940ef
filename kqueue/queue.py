"""KQueue: add jobs, register handlers, run them; suspend, resume, purge and inspect."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, ClassVar

from kqueue import job as jobmod
from kqueue.admin import QueueAdmin
from kqueue.broker import BeanstalkConnection, DeadlineSoon, ReservedJob, Wakeup
from kqueue.errors import (
    BrokerError,
    JobNotFoundError,
    JobTooBigError,
    StoreError,
    ValidationError,
)
from kqueue.hooks import HookChain, Hooks
from kqueue.job import Job, check_delay, check_u32, tube_for, validate_tube_prefix
from kqueue.keys import new_key
from kqueue.retry import RetryPolicy
from kqueue.runner import Handler, HandlerSpec, JobRunner
from kqueue.serialization import Codec, CodecRegistry, decode_body, encode_body, record_body
from kqueue.stores.base import BrokerRef, JobRecord, Store, new_record
from kqueue.window import ReserveWindow

logger = logging.getLogger("kqueue")

NOT_SCHEDULED = 0
"""add_job's id for a job accepted into the store while beanstalkd was unreachable: the
recovery sweeper schedules it. Real beanstalkd ids start at 1."""


class KQueue(QueueAdmin):
    """A job queue on beanstalkd, with an optional write-ahead bulk store.

    Every argument is keyword-only::

        with KQueue(host="127.0.0.1", port=11300, bulk_store="redis://localhost/0") as queue:
            queue.add_handler("email", send_email)
            queue.add_job("email", {"to": "a@example.com"})
            queue.run_jobs(count_limit=100, time_limit_ms=200)

    ``bulk_store`` is a :class:`~kqueue.stores.base.Store` or a store URL. Without one,
    payloads travel inline in beanstalkd and nothing else holds them. ``strict`` makes
    add_job raise (and remove the record) when beanstalkd refuses the reference, instead of
    leaving the accepted job for the recovery sweeper.

    ``window`` is the most jobs a worker reserves at once while jobs are ready (1: one at a
    time; see :mod:`kqueue.window`). With a store, payloads up to ``inline_copy_max`` bytes
    also travel inline in the beanstalkd body (mode ``s``), so a worker only checks that the
    record still exists instead of reading it; 0 turns that off.
    """

    PRIO_URGENT: ClassVar[int] = jobmod.PRIO_URGENT
    PRIO_HIGH: ClassVar[int] = jobmod.PRIO_HIGH
    PRIO_NORMAL: ClassVar[int] = jobmod.PRIO_NORMAL
    PRIO_LOW: ClassVar[int] = jobmod.PRIO_LOW
    PRIO_BULK: ClassVar[int] = jobmod.PRIO_BULK

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 11300,
        bulk_store: Store | str | None = None,
        tube_prefix: str = jobmod.DEFAULT_TUBE_PREFIX,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
        strict: bool = False,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        reconnect_delay: tuple[float, float] = (0.05, 5.0),
        recovery_grace: float = 30.0,
        hooks: Sequence[Hooks] = (),
        window: int = 128,
        inline_copy_max: int = 1024,
    ) -> None:
        from kqueue.serialization import JsonCodec

        self.host = host
        self.port = port
        self.tube_prefix = validate_tube_prefix(tube_prefix)
        self.store: Store | None = _open_store(bulk_store)
        self._owns_store = isinstance(bulk_store, str)
        self.codecs = CodecRegistry(codec or JsonCodec())
        self.retry = retry or RetryPolicy()
        self.strict = strict
        self.reconnect_delay = reconnect_delay
        self.recovery_grace = recovery_grace
        self.counters: Counter[str] = Counter()
        self.inline_copy_max = check_u32("inline_copy_max", inline_copy_max)
        self._window = ReserveWindow(check_u32("window", window, minimum=1))
        self._timeouts = (connect_timeout, command_timeout)
        self._handlers: dict[str, HandlerSpec] = {}
        self._producer = self._connection()
        self._worker = self._connection()
        self._admin = self._connection()
        self._producer_tube: str | None = None
        self._wakeup = Wakeup()
        self._stop_requested = False
        self._warned_inline = False
        self.hooks = HookChain(hooks)
        self._runner = JobRunner(
            store=self.store,
            codecs=self.codecs,
            handlers=self._handlers,
            retry=self.retry,
            tube_prefix=self.tube_prefix,
            counters=self.counters,
            hooks=self.hooks,
        )

    def __repr__(self) -> str:
        store = type(self.store).__name__ if self.store is not None else "inline"
        return f"<KQueue beanstalkd={self.host}:{self.port} store={store}>"

    def _connection(self) -> BeanstalkConnection:
        connect_timeout, command_timeout = self._timeouts
        return BeanstalkConnection(
            self.host,
            self.port,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )

    # -- life cycle ------------------------------------------------------------------------

    def open(self) -> KQueue:
        """Connect now, so that an unreachable beanstalkd fails here with its address.

        Optional: every method connects (and reconnects) by itself when needed.
        """
        self._producer.connect()
        return self

    def close(self) -> None:
        """Close every connection (reserved jobs go back to ready).

        A store this queue opened from a URL is closed too; a Store object passed in belongs
        to the caller, who may share it between queues.
        """
        self._runner.close()  # the deletes of finished jobs go out before their connection
        for conn in (self._producer, self._worker, self._admin):
            conn.close()
        self._wakeup.close()
        if self.store is not None and self._owns_store:
            self.store.close()

    def __enter__(self) -> KQueue:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- producing -------------------------------------------------------------------------

    def add_job(
        self,
        job_type: str,
        payload: Any,
        *,
        priority: int = jobmod.PRIO_NORMAL,
        delay: float = 0,
        ttr: int = 30,
    ) -> int:
        """Enqueue a job; returns its beanstalkd id.

        With a bulk store the payload is written durably first and beanstalkd gets a small
        reference. Should beanstalkd then fail, the job stays accepted and the id is
        :data:`NOT_SCHEDULED` (0): the recovery sweeper delivers it (``strict=True`` raises).
        Raises :class:`~kqueue.errors.ValidationError` for bad input, before writing anything.
        """
        tube = tube_for(job_type, self.tube_prefix)
        check_u32("priority", priority)
        whole_delay = check_delay(delay)
        check_u32("ttr", ttr, minimum=1)
        codec, data = self.codecs.encode(payload)
        key = new_key()
        if self.store is None:
            body = encode_body(
                "i",
                key=key,
                codec=codec,
                priority=priority,
                ttr=ttr,
                job_type=job_type,
                payload=data,
            )
            return self._put_inline(tube, body, priority, whole_delay, ttr)
        now = time.time()
        record = new_record(
            key, job_type, data, codec, priority=priority, delay=whole_delay, ttr=ttr, now=now
        )
        self.store.put(record)
        return self._put_reference(self.store, tube, record, self._reference_body(record))

    def _reference_body(self, record: JobRecord) -> bytes:
        """The body of a stored job: mode ``s`` with a copy of a small payload, else ``r``."""
        return record_body(record, copy_max=self.inline_copy_max)

    def add_jobs(
        self,
        job_type: str,
        payloads: Iterable[Any],
        *,
        priority: int = jobmod.PRIO_NORMAL,
        delay: float = 0,
        ttr: int = 30,
    ) -> list[int]:
        """Enqueue many jobs of one type at once; their beanstalkd ids, in order.

        Every payload is encoded before anything is written: one that cannot be encoded
        raises :class:`~kqueue.errors.PayloadError` (naming its index) and nothing is stored
        or enqueued. Then the records go to the store in one round trip and the references to
        beanstalkd in one pipelined burst (per :data:`~kqueue.batch.BATCH_SIZE` jobs). Ids are
        :data:`NOT_SCHEDULED` for jobs accepted while beanstalkd failed, as in add_job.
        """
        from kqueue.batch import add_batch

        return add_batch(self, job_type, payloads, priority=priority, delay=delay, ttr=ttr)

    def _warn_inline(self) -> None:
        if not self._warned_inline:
            self._warned_inline = True
            logger.warning(
                "no bulk store configured: jobs live only in beanstalkd at %s:%d "
                "(no recovery if it dies)",
                self.host,
                self.port,
            )

    def _put_inline(self, tube: str, body: bytes, priority: int, delay: int, ttr: int) -> int:
        self._warn_inline()
        with self._producer._lock:
            limit = self._producer.server_stats().get("max-job-size")
            if isinstance(limit, int) and len(body) > limit:
                raise JobTooBigError(
                    f"job body of {len(body)} bytes exceeds beanstalkd's max job size of "
                    f"{limit} bytes; configure a bulk store for large payloads"
                )
            job_id = self._put(tube, body, priority, delay, ttr)
        self.counters["added"] += 1
        return job_id

    def _put(self, tube: str, body: bytes, priority: int, delay: int, ttr: int) -> int:
        conn = self._producer
        with conn._lock:
            if self._producer_tube != tube:
                conn.use(tube)
                self._producer_tube = tube
            return conn.put(body, priority=priority, delay=delay, ttr=ttr)

    def _put_reference(self, store: Store, tube: str, record: JobRecord, body: bytes) -> int:
        try:
            with self._producer._lock:
                try:
                    job_id = self._put(tube, body, record.priority, int(record.delay), record.ttr)
                except JobTooBigError:
                    # The inline copy does not fit this server's max job size: a plain
                    # reference does (the record is already durable, so the job stays).
                    body = record_body(record)
                    job_id = self._put(tube, body, record.priority, int(record.delay), record.ttr)
                server_id = self._producer.server_id()
        except (BrokerError, JobTooBigError) as exc:
            if self.strict:
                store.delete(record.key)
                raise
            self.counters["added"] += 1
            self.counters["added_unscheduled"] += 1
            logger.warning(
                "job key=%s type=%s accepted into the store, not yet into beanstalkd (%s); "
                "the recovery sweeper will deliver it",
                record.key,
                record.job_type,
                exc,
            )
            return NOT_SCHEDULED
        self.counters["added"] += 1
        try:
            store.swap_reference(record.key, None, BrokerRef(server_id, job_id), now=time.time())
        except StoreError as exc:
            # The job is in beanstalkd and will run: report success. Without its reference
            # the sweeper may put it again after the grace period (a duplicate the worker
            # drops once the record names the other copy).
            logger.warning(
                "job %s key=%s: put, but its reference not saved: %s", job_id, record.key, exc
            )
        return job_id

    # -- handlers and running --------------------------------------------------------------

    def add_handler(
        self,
        job_type: str,
        handler: Handler,
        *,
        retry: RetryPolicy | None = None,
        auto_touch: bool = False,
    ) -> None:
        """Register the one handler of a job type.

        ``retry`` overrides the queue's retry policy for this type. ``auto_touch`` touches each
        job every half TTR while its handler runs, for handlers that may outlast their TTR.
        """
        tube_for(job_type, self.tube_prefix)
        if not callable(handler):
            raise ValidationError(f"handler for {job_type!r} must be callable")
        if job_type in self._handlers:
            raise ValidationError(f"job type {job_type!r} already has a handler")
        self._handlers[job_type] = HandlerSpec(handler, retry, auto_touch)
        self._wakeup.set()  # a waiting run_jobs picks up the new tube

    def remove_handler(self, job_type: str) -> None:
        """Stop running jobs of this type here; its jobs stay queued."""
        if self._handlers.pop(job_type, None) is None:
            raise ValidationError(f"job type {job_type!r} has no handler")
        self._wakeup.set()

    def stop(self) -> None:
        """Make a running run_jobs return after the current job (from any thread)."""
        self._stop_requested = True
        self._wakeup.set()

    def run_jobs(self, count_limit: int = -1, time_limit_ms: int = -1) -> int:
        """Run jobs of the registered types; returns how many handlers ran.

        ``count_limit`` > 0 runs at most that many, < 0 no limit. ``time_limit_ms`` 0 runs what
        is ready now and returns, > 0 waits for jobs up to that long, -1 forever (until
        :meth:`stop`). Waiting blocks in beanstalkd's reserve, never polls. A lost connection is
        re-established with backoff and the loop carries on.
        """
        for name, value in (("count_limit", count_limit), ("time_limit_ms", time_limit_ms)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name} must be an int")
        if count_limit == 0:
            return 0
        self._stop_requested = False
        self._wakeup.clear()
        deadline = None if time_limit_ms < 0 else time.monotonic() + time_limit_ms / 1000
        ran = 0
        backoff = self.reconnect_delay[0]
        try:
            while (count_limit < 0 or ran < count_limit) and not self._stop_requested:
                wait = _remaining(deadline, drain=time_limit_ms == 0)
                if wait is not None and wait < 0:
                    break
                try:
                    reserved = self._reserve(wait, None if count_limit < 0 else count_limit - ran)
                    if reserved:
                        ran += self._run_window(reserved)
                except DeadlineSoon:
                    self._pause(0.25, deadline)
                    continue
                except BrokerError as exc:
                    # Lost, timed out, or an answer that makes no sense: start again on a fresh
                    # connection (closing this one hands its reserved jobs back at once).
                    self._runner.drain()
                    self._worker.close()
                    logger.warning(
                        "worker: beanstalkd failed: %s; retrying in %.2f s", exc, backoff
                    )
                    self._pause(backoff, deadline)
                    backoff = min(backoff * 2, self.reconnect_delay[1])
                    continue
                except StoreError as exc:
                    # Hand the window back at once (closing releases it); retry after a pause.
                    self._runner.drain()
                    self._worker.close()
                    logger.error("store failed while running a job: %s", exc)
                    self._pause(backoff, deadline)
                    backoff = min(backoff * 2, self.reconnect_delay[1])
                    continue
                backoff = self.reconnect_delay[0]
                if not reserved and time_limit_ms == 0:
                    break
        finally:
            self._runner.drain()  # every finished job deleted when run_jobs returns
        return ran

    def _reserve(self, wait: float | None, room: int | None) -> list[ReservedJob]:
        # Clear wake-ups before looking at the flags they announce, so none is lost.
        self._wakeup.clear()
        if self._stop_requested:
            return []
        if not self._handlers:
            self._pause(wait, None)
            return []
        self._sync_watches()
        return self._window.reserve(
            self._worker, wait, wakeup=self._wakeup.fd, room=room, before_wait=self._runner.drain
        )

    def _run_window(self, reserved: list[ReservedJob]) -> int:
        started = time.monotonic()
        ran = self._runner.run_window(
            self._worker,
            reserved,
            reserved_at=started,
            should_stop=lambda: self._stop_requested,
            drain=False,  # the next window's reserve overlaps the last deletes
        )
        self._window.observe(len(reserved), time.monotonic() - started)
        return ran

    def _pause(self, seconds: float | None, deadline: float | None) -> None:
        """Sleep, but wake for stop() or add_handler(), and never past the deadline."""
        if deadline is not None:
            seconds = min(seconds or 0, max(0.0, deadline - time.monotonic()))
        if seconds is None or seconds > 0:
            import select

            select.select([self._wakeup.fd], [], [], seconds)

    def _sync_watches(self) -> None:
        conn = self._worker
        wanted = [self.tube_prefix + job_type for job_type in self._handlers]
        if conn.connected and conn.watched == wanted:
            return
        for tube in wanted:
            if tube not in conn.watched:
                conn.watch(tube)
        for tube in conn.watched:
            if tube not in wanted:
                conn.ignore(tube)

    # -- a job's own commands (from its handler) -------------------------------------------

    def delete_job(self, job: Job | int) -> bool:
        """Delete a job and its record; idempotent. False if beanstalkd no longer had it."""
        if isinstance(job, Job):
            if job.outcome == "deleted":
                return False
            conn = job._connection or self._admin
            if job.stored and self.store is not None:
                self.store.delete(job.key)
            job.outcome = "deleted"
            return conn.delete(job.id)
        found = self._admin.peek(job)
        if found is None:
            return False
        body = decode_body(found.body)
        if body is not None and body.stored and self.store is not None:
            self.store.delete(body.key)
        return self._admin.delete(job)

    def renew_job(self, job: Job) -> None:
        """Touch a reserved job: its time to run starts again."""
        if not _job_connection(job).touch(job.id):
            raise JobNotFoundError(f"job {job.id} is not reserved here (TTR ran out?)")

    def release_job(self, job: Job, *, delay: float = 0, priority: int | None = None) -> None:
        """Hand a reserved job back to the queue (a stored job's attempts do not change;
        an inline job counts attempts from beanstalkd's release counter, so this counts)."""
        whole_delay = check_delay(delay)
        new_priority = job.priority if priority is None else check_u32("priority", priority)
        if not _job_connection(job).release(job.id, priority=new_priority, delay=whole_delay):
            raise JobNotFoundError(f"job {job.id} is not reserved here")
        job.outcome = "released"

    def bury_job(self, job: Job, *, reason: str = "buried by its handler") -> None:
        """Bury a reserved job (dead letter) until it is kicked or purged."""
        if job.stored and self.store is not None:
            self.store.record_attempt(
                job.key, attempts=job.attempts, last_error=reason, state="buried", now=time.time()
            )
        if not _job_connection(job).bury(job.id, priority=job.priority):
            raise JobNotFoundError(f"job {job.id} is not reserved here")
        job.outcome = "buried"


def _job_connection(job: Job) -> BeanstalkConnection:
    if job._connection is None:
        raise JobNotFoundError(f"job {job.id} was not reserved by this queue")
    return job._connection


def _remaining(deadline: float | None, *, drain: bool) -> float | None:
    """Seconds left to wait: None forever, 0 for run-what-is-ready, < 0 when time is up."""
    if drain:
        return 0
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return left if left > 0 else -1.0


def _open_store(bulk_store: Store | str | None) -> Store | None:
    if bulk_store is None or not isinstance(bulk_store, str):
        return bulk_store
    from kqueue.stores import open_store

    return open_store(bulk_store)
