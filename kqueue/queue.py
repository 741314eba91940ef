"""KQueue: the public facade over a producer, a consumer and an admin built from one config."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

from kqueue import job as jobmod
from kqueue.admin import Admin, QueueStats
from kqueue.beanstalk.connection import BeanstalkConnection, SocketFactory
from kqueue.beanstalk.wire import JobStats
from kqueue.config import QueueConfig
from kqueue.consumer import Consumer
from kqueue.errors import JobNotFoundError, ValidationError
from kqueue.job import Job, check_delay, check_u32
from kqueue.middleware import AutoTouch, Counters, Middleware, MiddlewareChain, Retries
from kqueue.producer import NOT_SCHEDULED, Producer
from kqueue.results import JobStatus, job_status, require_store, wait_for_result, worker_name
from kqueue.retire import DrainReport, drain_server
from kqueue.retry import RetryPolicy
from kqueue.runner import Handler, HandlerSpec
from kqueue.schedule import MissedTicks, Schedule
from kqueue.serialization import Codec, CodecRegistry
from kqueue.stores.base import AttemptFailure, Store
from kqueue.sweeper import SweepReport
from kqueue.tasks import Task
from kqueue.unique import UniqueFor, UniqueKeys, UniqueLifetime

__all__ = ["NOT_SCHEDULED", "KQueue"]

P = ParamSpec("P")
R = TypeVar("R")

_NOT_SETTINGS = frozenset({"self", "bulk_store", "middleware", "hooks", "__class__"})


class KQueue:
    """A job queue on beanstalkd, with an optional write-ahead bulk store.

    Every argument is keyword-only::

        with KQueue(host="127.0.0.1", port=11300, bulk_store="redis://localhost/0") as queue:
            queue.add_handler("email", send_email)
            queue.add_job("email", {"to": "a@example.com"})
            queue.run_jobs(count_limit=100, time_limit_ms=200)

    ``servers=["h1:11300", "h2:11300"]`` bonds several beanstalkd servers into one queue
    (instead of ``host`` and ``port``; see docs/guide.md, "Several beanstalkd servers").
    ``bulk_store`` is a :class:`~kqueue.stores.base.Store` or a store URL. Without one,
    payloads travel inline in beanstalkd and nothing else holds them. The other settings are
    those of :class:`~kqueue.config.QueueConfig` (read back as :attr:`config`).
    ``middleware`` (and ``hooks``, their first name) observe and steer every job's life; see
    :mod:`kqueue.middleware`.

    The queue composes three parts, each on a beanstalkd connection of its own:
    :attr:`producer` (add_job, add_jobs), :attr:`consumer` (handlers and run_jobs) and
    :attr:`admin` (suspend, resume, purge, kick, sweep, stats).
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
        servers: Sequence[str] = (),
        server_down_grace: float | timedelta = 60.0,
        bulk_store: Store | str | None = None,
        tube_prefix: str = jobmod.DEFAULT_TUBE_PREFIX,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
        strict: bool = False,
        connect_timeout: float | timedelta = 5.0,
        command_timeout: float | timedelta = 10.0,
        reconnect_delay: tuple[float, float] = (0.05, 5.0),
        recovery_grace: float | timedelta = 30.0,
        middleware: Sequence[Middleware] = (),
        hooks: Sequence[Middleware] = (),
        window: int = 128,
        window_target: float | timedelta = 0.02,
        inline_copy_max: int = 1024,
        heartbeat: float | timedelta = 30.0,
        count_lost_attempts: bool = True,
        connect: SocketFactory | None = None,
        lanes: int = 0,
    ) -> None:
        # Every parameter but the store and the middleware is a QueueConfig field of the same
        # name: they go there as they are (named once, here), and are checked there.
        settings = {k: v for k, v in locals().items() if k not in _NOT_SETTINGS}
        config = QueueConfig.from_arguments(**settings)
        self._compose(config, bulk_store, [*middleware, *hooks], CodecRegistry(config.codec))

    @classmethod
    def from_config(
        cls,
        config: QueueConfig,
        *,
        bulk_store: Store | str | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> KQueue:
        """A queue with these settings (``dataclasses.replace`` one config to make another)."""
        queue = cls.__new__(cls)
        queue._compose(config, bulk_store, list(middleware), CodecRegistry(config.codec))
        return queue

    def _compose(
        self,
        config: QueueConfig,
        bulk_store: Store | str | None,
        middleware: list[Middleware],
        codecs: CodecRegistry,
    ) -> None:
        self.config = config
        self.store: Store | None = _open_store(bulk_store)
        self._owns_store = isinstance(bulk_store, str)
        self.codecs = codecs
        self.counters: Counter[str] = Counter()
        self._user_middleware = middleware
        touch = AutoTouch(job_types=())
        builtin = [Counters(self.counters), Retries(config.retry), touch]
        self.middleware = MiddlewareChain([*builtin, *middleware])
        parts: dict[str, Any] = {"store": self.store, "events": self.middleware}
        self.producer = Producer(config, codecs=codecs, **parts)
        self.consumer = Consumer(config, codecs=codecs, touch=touch, **parts)
        self.admin = Admin(config, counters=self.counters, **parts)
        self.periodic: dict[str, Schedule] = {}
        """The periodic schedules by name (:meth:`add_periodic`), run by a Scheduler."""

    def with_config(self, config: QueueConfig, *, bulk_store: Store | str | None = None) -> KQueue:
        """The same application (handlers, codecs, middleware) on other settings.

        ``bulk_store`` None keeps this queue's store. E.g. on another beanstalkd::

            moved = queue.with_config(dataclasses.replace(queue.config, port=11301))
        """
        store = self.store if bulk_store is None else bulk_store
        moved = KQueue.__new__(KQueue)
        # The same codec registry: every codec the application registered, for decoding.
        moved._compose(config, store, list(self._user_middleware), self.codecs)
        for job_type, spec in self.handlers.items():
            moved.add_handler(
                job_type,
                spec.handler,
                retry=spec.retry,
                auto_touch=spec.auto_touch,
                keep_result=spec.keep_result,
            )
        moved.periodic.update(self.periodic)
        return moved

    def __repr__(self) -> str:
        store = type(self.store).__name__ if self.store is not None else "inline"
        return f"<KQueue beanstalkd={self.config.address} store={store}>"

    # -- settings, read back ---------------------------------------------------------------

    @property
    def host(self) -> str:
        """The (first) beanstalkd server's host (of ``config.addresses``)."""
        return self.config.addresses[0][0]

    @property
    def port(self) -> int:
        """The (first) beanstalkd server's port (of ``config.addresses``)."""
        return self.config.addresses[0][1]

    @property
    def tube_prefix(self) -> str:
        """The tube name prefix (``config.tube_prefix``)."""
        return self.config.tube_prefix

    @property
    def handlers(self) -> Mapping[str, HandlerSpec]:
        """The registered handlers by job type (read-only)."""
        return self.consumer.handlers

    def new_connection(self) -> BeanstalkConnection:
        """A new beanstalkd connection with this queue's settings (the caller closes it; of
        several servers, to the first)."""
        return self.config.new_connection()

    def new_connections(self) -> list[BeanstalkConnection]:
        """A new connection to each beanstalkd server of the queue (the caller closes them)."""
        return [self.config.new_connection(address) for address in self.config.addresses]

    def note_answering(self, answering: Mapping[str, str]) -> None:
        """Keep in the store that these servers (address -> server id) answer now, for
        recovery passes started later (see :mod:`kqueue.sightings`); of a bonded queue with
        a store only. A background sweeper calls it between passes."""
        self.admin.note_answering(answering)

    def add_middleware(self, middleware: Middleware) -> None:
        """Add one more middleware (after those given to the constructor)."""
        self.middleware.add(middleware)
        self._user_middleware.append(middleware)

    # -- life cycle ------------------------------------------------------------------------

    def open(self) -> KQueue:
        """Connect now, so that an unreachable beanstalkd fails here with its address.

        Optional: every method connects (and reconnects) by itself when needed.
        """
        self.producer.connect()
        return self

    def close(self) -> None:
        """Close every connection (reserved jobs go back to ready).

        A store this queue opened from a URL is closed too; a Store object passed in belongs
        to the caller, who may share it between queues.
        """
        self.consumer.close()
        self.producer.close()
        self.admin.close()
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
        unique_key: str | None = None,
        unique_for: UniqueLifetime = UniqueFor.FINISH,
    ) -> int:
        """Enqueue a job; returns its beanstalkd id.

        With a bulk store the payload is written durably first and beanstalkd gets a small
        reference. Should beanstalkd then fail, the job stays accepted and the id is
        :data:`NOT_SCHEDULED` (0): the recovery sweeper delivers it (``strict=True`` raises).
        Raises :class:`~kqueue.errors.ValidationError` for bad input, before writing anything.

        ``unique_key`` (needs a bulk store): while a job added with the same key holds it, no
        job is added and the id is that job's (:data:`NOT_SCHEDULED` while beanstalkd does
        not hold it). ``unique_for`` says how long a job holds its key:
        :attr:`UniqueFor.FINISH` (the default), :attr:`UniqueFor.START`, or a number of
        seconds (or a timedelta) after the add, whatever happens to the job. The store
        decides atomically, however many producers add the same key at once.
        """
        options = self.producer.options(job_type, priority, delay, ttr)
        return self.producer.add_job(options, payload, unique_key=unique_key, unique_for=unique_for)

    def add_jobs(
        self,
        job_type: str,
        payloads: Iterable[Any],
        *,
        priority: int = jobmod.PRIO_NORMAL,
        delay: float = 0,
        ttr: int = 30,
        unique_key: UniqueKeys | None = None,
        unique_for: UniqueLifetime = UniqueFor.FINISH,
    ) -> list[int]:
        """Enqueue many jobs of one type at once; their beanstalkd ids, in order.

        Every payload is encoded before anything is written: one that cannot be encoded
        raises :class:`~kqueue.errors.PayloadError` (naming its index) and nothing is stored
        or enqueued. Then the records go to the store in one round trip and the references to
        beanstalkd in one pipelined burst (per :data:`~kqueue.producer.BATCH_SIZE` jobs). Ids
        are :data:`NOT_SCHEDULED` for jobs accepted while beanstalkd failed, as in add_job.
        ``unique_key`` is a function of the payload or a key (or None) per payload; each
        job is then unique as in :meth:`add_job` (a key twice in one call: the first adds).
        """
        options = self.producer.options(job_type, priority, delay, ttr)
        return self.producer.add_jobs(
            options, payloads, unique_key=unique_key, unique_for=unique_for
        )

    def add_periodic(
        self,
        job_type: str,
        cron: str,
        *,
        payload: Any = None,
        tz: str = "UTC",
        missed: MissedTicks = "skip",
        name: str | None = None,
        priority: int = jobmod.PRIO_NORMAL,
        ttr: int = 30,
    ) -> Schedule:
        """Add a job of ``job_type`` with ``payload`` at every tick of a cron expression
        (``"0 3 * * *"``: 03:00 every day) in the time zone ``tz`` (an IANA name).

        A :class:`~kqueue.scheduler.Scheduler` adds the jobs (``kqueue scheduler``, or
        ``kqueue worker --scheduler``); exactly one job per tick however many run. ``missed``
        says what happens to ticks that passed while none ran: ``"skip"`` them, or
        ``"run_once"``. ``name`` (default: the job type) must be unique per queue. Needs a
        bulk store and ``pip install kqueue[periodic]``; bad arguments raise
        :class:`~kqueue.errors.ValidationError`.
        """
        self.producer.options(job_type, priority, 0, ttr)  # the job type and options, checked
        schedule = Schedule.create(
            job_type, cron, payload=payload, tz=tz, missed=missed, name=name,
            priority=priority, ttr=ttr,
        )  # fmt: skip
        if schedule.name in self.periodic:
            raise ValidationError(f"a periodic schedule named {schedule.name!r} exists already")
        self.codecs.encode(payload)  # a payload the codec cannot encode fails here, not later
        self.periodic[schedule.name] = schedule
        return schedule

    # -- handlers and running --------------------------------------------------------------

    def add_handler(
        self,
        job_type: str,
        handler: Handler,
        *,
        retry: RetryPolicy | None = None,
        auto_touch: bool = False,
        keep_result: float | None = None,
    ) -> None:
        """Register the one handler of a job type.

        ``retry`` overrides the queue's retry policy for this type. ``auto_touch`` touches each
        job every half TTR while its handler runs, for handlers that may outlast their TTR.
        ``keep_result`` keeps each job's outcome (the handler's return value, through the
        codec, or its final failure) in the store for that many seconds: see
        :meth:`job_result` and :meth:`job_status`.
        """
        if keep_result is not None:
            require_store(self.store, "keep_result")
        self.consumer.add_handler(
            job_type, handler, retry=retry, auto_touch=auto_touch, keep_result=keep_result
        )

    @overload
    def task(self, func: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        job_type: str | None = None,
        /,
        *,
        priority: int = jobmod.PRIO_NORMAL,
        ttr: int = 30,
        retry: RetryPolicy | None = None,
        keep_result: float | timedelta | None = None,
        auto_touch: bool = False,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        job_type: Any = None,
        /,
        *,
        priority: int = jobmod.PRIO_NORMAL,
        ttr: int = 30,
        retry: RetryPolicy | None = None,
        keep_result: float | timedelta | None = None,
        auto_touch: bool = False,
    ) -> Any:
        """Register a function as the handler of a job type; a :class:`~kqueue.tasks.Task`
        whose ``add(...)`` takes the function's own arguments (checked by mypy)::

            @queue.task("email.send", priority=PRIO_HIGH, keep_result=3600)
            def send_email(to: str, subject: str) -> str: ...

        Bare ``@queue.task`` (or ``@queue.task()``) names the job type after the function's
        module and qualified name. The other options are those of add_job and add_handler.
        """
        options: dict[str, Any] = {
            "priority": priority,
            "ttr": ttr,
            "retry": retry,
            "keep_result": keep_result,
            "auto_touch": auto_touch,
        }
        if callable(job_type):
            return Task(self, job_type, **options)
        return lambda func: Task(self, func, job_type=job_type, **options)

    def remove_handler(self, job_type: str) -> None:
        """Stop running jobs of this type here; its jobs stay queued."""
        self.consumer.remove_handler(job_type)

    def stop(self) -> None:
        """Make a running run_jobs return after the current job (from any thread)."""
        self.consumer.stop()

    def run_jobs(
        self,
        count_limit: int = -1,
        time_limit_ms: int = -1,
        *,
        job_types: Collection[str] | None = None,
        stop_event: threading.Event | None = None,
    ) -> int:
        """Run jobs of the registered types; returns how many handlers ran.

        ``count_limit`` > 0 runs at most that many, < 0 no limit. ``time_limit_ms`` 0 runs what
        is ready now and returns, > 0 waits for jobs up to that long, -1 forever (until
        :meth:`stop`). ``job_types`` limits this run to some of the handlers. Waiting blocks
        in beanstalkd's reserve, never polls. A lost connection is re-established with
        backoff and the loop carries on. ``stop_event``, once set, stops the run as
        :meth:`stop` does, and also when it was set before the run started (a signal handler
        that fires while a worker is still starting must not be forgotten).
        """
        return self.consumer.run_jobs(
            count_limit, time_limit_ms, job_types=job_types, stop_event=stop_event
        )

    # -- a job's own commands (from its handler) -------------------------------------------

    def delete_job(self, job: Job | int) -> bool:
        """Delete a job and its record; idempotent. False if beanstalkd no longer had it."""
        if not isinstance(job, Job):
            return self.admin.delete_job(job)
        if job.outcome == "deleted":
            return False
        if job.stored and self.store is not None:
            self.store.delete(job.key)
        job.outcome = "deleted"
        if job.connection is None:
            return self.admin.delete_job(job.id)
        return job.connection.delete(job.id)

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
        """Bury a reserved job (dead letter) until it is kicked or purged; the reason joins
        its failure history (as a ``kqueue.Buried`` failure)."""
        if job.stored and self.store is not None:
            now = time.time()
            failure = AttemptFailure(now, job.attempts, worker_name(), "kqueue.Buried", reason)
            self.store.record_failure(
                job.key, failure, attempts=job.attempts, last_error=reason, state="buried", now=now
            )
        if not _job_connection(job).bury(job.id, priority=job.priority):
            raise JobNotFoundError(f"job {job.id} is not reserved here")
        job.outcome = "buried"

    # -- administration (see Admin) --------------------------------------------------------

    def suspend(self, job_type: str) -> None:
        """Hold every job of this type (for every worker) until resume(); adds still work."""
        self.admin.suspend(job_type)

    def resume(self, job_type: str) -> None:
        """Deliver the jobs of a suspended type again."""
        self.admin.resume(job_type)

    def purge_jobs(
        self,
        job_type: str,
        pattern: str | bytes | re.Pattern[Any] | None = None,
        *,
        progress: Callable[[], None] | None = None,
    ) -> int:
        """Delete the waiting jobs of a type whose payload matches ``pattern``; a count
        (see :meth:`kqueue.admin.Admin.purge_jobs` for how matching works)."""
        return self.admin.purge_jobs(job_type, pattern, progress=progress)

    def kick_buried(self, job_type: str, count: int | None = None) -> int:
        """Send buried jobs of a type back to ready with a fresh budget; how many."""
        return self.admin.kick_buried(job_type, count)

    def drain_server(self, address: str) -> DrainReport:
        """Move every job of the beanstalkd server at ``address`` (``host:port``, one of
        ``servers``) to the others through its record, so that it can be retired; see
        :mod:`kqueue.retire`. Take it out of the producers' ``servers`` first."""
        return drain_server(self.config, self.store, address)

    def sweep(
        self,
        *,
        grace: float | None = None,
        progress: Callable[[], None] | None = None,
        verify: bool = False,
    ) -> SweepReport:
        """Run one recovery pass: re-enqueue every stored job that beanstalkd lost.

        Jobs a restarted broker lost are put back at once; records without a reference
        younger than ``grace`` seconds (default: ``config.recovery_grace``) are left alone,
        since their producer may still be putting them. ``verify`` also checks the jobs of
        the broker that answers now (see :meth:`Admin.sweep`). Safe to run from several
        processes at once. Needs a bulk store.
        """
        return self.admin.sweep(grace=grace, progress=progress, verify=verify)

    # -- outcomes: status, results, failure history ----------------------------------------

    def job_status(self, key: str) -> JobStatus:
        """What became of the job with this record key: pending, delayed, running, done,
        failed, buried or unknown (see :mod:`kqueue.results`). Needs a bulk store."""
        store = require_store(self.store, "job_status")
        return job_status(store, key, self.admin.broker_state)

    def job_result(self, key: str, *, timeout: float | None = None) -> Any:
        """The kept result of a job (its handler's return value), waiting up to ``timeout``
        seconds (None: forever) for the job to finish.

        Raises :class:`~kqueue.errors.ResultTimeoutError` when the time runs out,
        :class:`~kqueue.errors.JobFailedError` (with its last failure) when the job failed
        for good, :class:`~kqueue.errors.JobNotFoundError` when neither the job nor a result
        is kept. Its job type must keep results (``keep_result=``).
        """
        store = require_store(self.store, "job_result")
        broker_state = self.admin.broker_state
        return wait_for_result(store, self.codecs, key, timeout=timeout, broker_state=broker_state)

    def job_failures(self, key: str) -> list[AttemptFailure]:
        """The failed attempts of a job still stored, oldest first (the last ten)."""
        return require_store(self.store, "job_failures").get_failures(key)

    def stats(self) -> QueueStats:
        """Server stats, and per job type (tubes under this queue's prefix) their counts."""
        return self.admin.stats()

    def job_stats(self, job: Job | int) -> JobStats:
        """beanstalkd's stats-job for a job (or job id); JobNotFoundError if it is gone."""
        return self.admin.job_stats(job.id if isinstance(job, Job) else job)


def _job_connection(job: Job) -> BeanstalkConnection:
    if job.connection is None:
        raise JobNotFoundError(f"job {job.id} was not reserved by this queue")
    return job.connection


def _open_store(bulk_store: Store | str | None) -> Store | None:
    if bulk_store is None or not isinstance(bulk_store, str):
        return bulk_store
    from kqueue.stores.registry import open_store

    return open_store(bulk_store)
