"""AsyncKQueue: KQueue's API for asyncio applications, awaited.

It wraps a :class:`~kqueue.KQueue` (:attr:`AsyncKQueue.queue`): the same settings, handler
registry, codecs and middleware, so one application object serves an asyncio web app, a sync
script and ``kqueue worker`` alike. Adding and running jobs are native asyncio (an
:class:`~kqueue.aio.producer.AsyncProducer` and :class:`~kqueue.aio.consumer.AsyncConsumer`
on asyncio connections); the administration calls (suspend, purge, sweep, stats ...) run the
sync ones in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar

from kqueue import job as jobmod
from kqueue.admin import QueueStats
from kqueue.aio.consumer import AsyncConsumer
from kqueue.aio.prepare import AsyncJob
from kqueue.aio.producer import AsyncProducer
from kqueue.aio.stores import async_store
from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.aio_connection import AsyncBeanstalkConnection
from kqueue.beanstalk.wire import JobStats
from kqueue.config import QueueConfig
from kqueue.errors import JobNotFoundError, NotSupportedError
from kqueue.health import BrokerHealth
from kqueue.job import Job, check_delay, check_u32
from kqueue.middleware.base import Middleware
from kqueue.queue import KQueue
from kqueue.results import JobStatus
from kqueue.retry import RetryPolicy
from kqueue.runner import Handler, HandlerSpec
from kqueue.stores.base import AttemptFailure
from kqueue.sweeper import SweepReport
from kqueue.unique import UniqueFor, UniqueLifetime

__all__ = ["AsyncKQueue"]


class AsyncKQueue:
    """A job queue for asyncio: the arguments of :class:`~kqueue.KQueue`, its method names,
    awaited. ::

        queue = AsyncKQueue(host="127.0.0.1", port=11300, bulk_store="redis://localhost/0")

        @queue.handler("email")          # or queue.add_handler("email", send_email)
        async def send_email(job): ...

        job_id = await queue.add_job("email", {"to": "a@example.com"})
        await queue.run_jobs(time_limit_ms=200, concurrency=100)
        await queue.close()

    Handlers may be ``async def`` (run on the loop, up to ``concurrency`` at once) or plain
    functions (run in a worker thread).

    With ``servers=[...]`` (several beanstalkd servers), adding jobs spreads them over the
    servers as :class:`~kqueue.KQueue` does (round robin, failing over to the next healthy
    server); running them takes jobs from every server, a reserve waiting on each, within one
    ``concurrency`` bound (see :mod:`kqueue.aio.consumer`).
    """

    PRIO_URGENT: ClassVar[int] = jobmod.PRIO_URGENT
    PRIO_HIGH: ClassVar[int] = jobmod.PRIO_HIGH
    PRIO_NORMAL: ClassVar[int] = jobmod.PRIO_NORMAL
    PRIO_LOW: ClassVar[int] = jobmod.PRIO_LOW
    PRIO_BULK: ClassVar[int] = jobmod.PRIO_BULK

    def __init__(self, **settings: Any) -> None:
        """The keyword arguments of :class:`~kqueue.KQueue`, checked by it."""
        self._wrap(KQueue(**settings))

    @classmethod
    def from_queue(cls, queue: KQueue) -> AsyncKQueue:
        """The asyncio face of ``queue``: its settings, store, handlers and middleware."""
        self = cls.__new__(cls)
        self._wrap(queue)
        return self

    @classmethod
    def from_config(
        cls,
        config: QueueConfig,
        *,
        bulk_store: Any = None,
        middleware: Iterable[Middleware] = (),
    ) -> AsyncKQueue:
        """A queue with these settings (see :meth:`kqueue.KQueue.from_config`)."""
        queue = KQueue.from_config(config, bulk_store=bulk_store, middleware=list(middleware))
        return cls.from_queue(queue)

    def _wrap(self, queue: KQueue) -> None:
        if queue.config.lanes:
            raise NotSupportedError(
                f"the asyncio queue does not run lanes yet (lanes={queue.config.lanes}): use "
                "KQueue (or kqueue worker without --concurrency) for a queue with lanes"
            )
        self.queue = queue
        self.config = queue.config
        self.store = queue.store
        self.async_store = None if queue.store is None else async_store(queue.store)
        self.health = BrokerHealth(queue.config)
        self.producer = AsyncProducer(
            queue.config, store=self.async_store, events=queue.middleware, health=self.health
        )
        self.consumer = AsyncConsumer(
            queue.config,
            handlers=queue.handlers,
            store=self.async_store,
            codecs=queue.codecs,
            events=queue.middleware,
        )

    def __repr__(self) -> str:
        return f"<AsyncKQueue of {self.queue!r}>"

    # -- settings, read back ---------------------------------------------------------------

    @property
    def host(self) -> str:
        """The beanstalkd host (of ``config.addresses``)."""
        return self.config.addresses[0][0]

    @property
    def port(self) -> int:
        """The beanstalkd port (of ``config.addresses``)."""
        return self.config.addresses[0][1]

    @property
    def tube_prefix(self) -> str:
        """The tube name prefix (``config.tube_prefix``)."""
        return self.config.tube_prefix

    @property
    def handlers(self) -> Mapping[str, HandlerSpec]:
        """The registered handlers by job type (read-only)."""
        return self.queue.handlers

    @property
    def counters(self) -> Mapping[str, int]:
        """Jobs completed, retried, buried ... as counted by the queue's middleware."""
        return self.queue.counters

    def add_middleware(self, middleware: Middleware) -> None:
        """Add one more middleware (see :meth:`kqueue.KQueue.add_middleware`)."""
        self.queue.add_middleware(middleware)

    # -- life cycle ------------------------------------------------------------------------

    async def open(self) -> AsyncKQueue:
        """Connect now, so that an unreachable beanstalkd fails here with its address."""
        await self.producer.connect()
        return self

    async def close(self) -> None:
        """Close every connection (and a store this queue opened from a URL)."""
        await self.producer.aclose()
        if self.async_store is not None:
            await self.async_store.aclose()
        self.health.close()
        await asyncio.to_thread(self.queue.close)

    async def __aenter__(self) -> AsyncKQueue:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- producing -------------------------------------------------------------------------

    async def add_job(
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
        """Enqueue a job; its beanstalkd id (see :meth:`kqueue.KQueue.add_job`: the record is
        durable before the reference is put; NOT_SCHEDULED when beanstalkd then failed).

        With a ``unique_key`` the add goes through the sync producer on a thread (the store's
        atomic unique write is not awaited natively yet), with the same answer."""
        if unique_key is not None:
            return await asyncio.to_thread(
                self.queue.add_job,
                job_type,
                payload,
                priority=priority,
                delay=delay,
                ttr=ttr,
                unique_key=unique_key,
                unique_for=unique_for,
            )
        options = self.queue.producer.options(job_type, priority, delay, ttr)
        encoded = [self.queue.codecs.encode(payload)]
        return (await self.producer.add(options, encoded))[0]

    async def add_jobs(
        self,
        job_type: str,
        payloads: Iterable[Any],
        *,
        priority: int = jobmod.PRIO_NORMAL,
        delay: float = 0,
        ttr: int = 30,
    ) -> list[int]:
        """Enqueue many jobs of one type at once; their ids in order (see
        :meth:`kqueue.KQueue.add_jobs`: every payload encoded before anything is written)."""
        options = self.queue.producer.options(job_type, priority, delay, ttr)
        return await self.producer.add(options, self.queue.producer.encode_all(payloads))

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
        """Register the one handler of a job type: ``async def`` or plain (see
        :meth:`kqueue.KQueue.add_handler`; ``auto_touch`` also lifts the TTR's limit on an
        async handler's run; ``keep_result`` keeps what it returns, as there)."""
        self.queue.add_handler(
            job_type, handler, retry=retry, auto_touch=auto_touch, keep_result=keep_result
        )

    def handler(
        self, job_type: str, *, retry: RetryPolicy | None = None, auto_touch: bool = False
    ) -> Callable[[Handler], Handler]:
        """:meth:`add_handler` as a decorator."""

        def register(function: Handler) -> Handler:
            self.add_handler(job_type, function, retry=retry, auto_touch=auto_touch)
            return function

        return register

    def remove_handler(self, job_type: str) -> None:
        """Stop running jobs of this type here; its jobs stay queued."""
        self.queue.remove_handler(job_type)

    def stop(self) -> None:
        """Make a running run_jobs stop taking jobs; it returns once those in flight are
        settled (call from the loop's thread)."""
        self.consumer.stop()

    async def run_jobs(
        self,
        count_limit: int = -1,
        time_limit_ms: int = -1,
        *,
        job_types: Collection[str] | None = None,
        concurrency: int = 1,
    ) -> int:
        """Run jobs, up to ``concurrency`` at once; how many handlers ran (the limits are
        those of :meth:`kqueue.KQueue.run_jobs`); over several servers, from all of them
        (see :mod:`kqueue.aio.consumer`)."""
        only = None if job_types is None else self.queue.consumer.check_job_types(job_types)
        return await self.consumer.run_jobs(
            count_limit, time_limit_ms, job_types=only, concurrency=concurrency
        )

    # -- a job's own commands (from its handler) -------------------------------------------

    async def delete_job(self, job: Job | int) -> bool:
        """Delete a job and its record; idempotent. False if beanstalkd no longer had it."""
        if not isinstance(job, AsyncJob) or job.aio_connection is None:
            return await asyncio.to_thread(self.queue.delete_job, job)
        if job.outcome == "deleted":
            return False
        if job.stored and self.async_store is not None:
            await self.async_store.delete_many([job.key])
        job.outcome = "deleted"
        return await job.aio_connection.run(cmd.delete(job.id), held=job.generation)

    async def renew_job(self, job: Job) -> None:
        """Touch a reserved job: its time to run starts again."""
        if not await _reserved(job).run(cmd.touch(job.id), held=_generation(job)):
            raise JobNotFoundError(f"job {job.id} is not reserved here (TTR ran out?)")

    async def release_job(self, job: Job, *, delay: float = 0, priority: int | None = None) -> None:
        """Hand a reserved job back to the queue (see :meth:`kqueue.KQueue.release_job`)."""
        whole_delay = check_delay(delay)
        new_priority = job.priority if priority is None else check_u32("priority", priority)
        released = await _reserved(job).run(
            cmd.release(job.id, priority=new_priority, delay=whole_delay), held=_generation(job)
        )
        if not released:
            raise JobNotFoundError(f"job {job.id} is not reserved here")
        job.outcome = "released"

    async def bury_job(self, job: Job, *, reason: str = "buried by its handler") -> None:
        """Bury a reserved job (dead letter) until it is kicked or purged."""
        if job.stored and self.async_store is not None:
            await self.async_store.record_attempt(
                job.key, attempts=job.attempts, last_error=reason, state="buried", now=time.time()
            )
        buried = cmd.bury(job.id, priority=job.priority)
        if not await _reserved(job).run(buried, held=_generation(job)):
            raise JobNotFoundError(f"job {job.id} is not reserved here")
        job.outcome = "buried"

    # -- administration (the sync queue's, in a worker thread) -----------------------------

    async def suspend(self, job_type: str) -> None:
        """Hold every job of this type until resume() (see :meth:`kqueue.KQueue.suspend`)."""
        await asyncio.to_thread(self.queue.suspend, job_type)

    async def resume(self, job_type: str) -> None:
        """Deliver the jobs of a suspended type again."""
        await asyncio.to_thread(self.queue.resume, job_type)

    async def purge_jobs(
        self, job_type: str, pattern: str | bytes | re.Pattern[Any] | None = None
    ) -> int:
        """Delete the waiting jobs of a type whose payload matches ``pattern``; a count."""
        return await asyncio.to_thread(self.queue.purge_jobs, job_type, pattern)

    async def kick_buried(self, job_type: str, count: int | None = None) -> int:
        """Send buried jobs of a type back to ready with a fresh budget; how many."""
        return await asyncio.to_thread(self.queue.kick_buried, job_type, count)

    async def sweep(self, *, grace: float | None = None, verify: bool = False) -> SweepReport:
        """Run one recovery pass (see :meth:`kqueue.KQueue.sweep`)."""
        return await asyncio.to_thread(lambda: self.queue.sweep(grace=grace, verify=verify))

    async def stats(self) -> QueueStats:
        """Server stats, and per job type their counts."""
        return await asyncio.to_thread(self.queue.stats)

    async def job_status(self, key: str) -> JobStatus:
        """:meth:`kqueue.KQueue.job_status`, on a thread."""
        return await asyncio.to_thread(self.queue.job_status, key)

    async def job_result(self, key: str, *, timeout: float | None = None) -> Any:
        """:meth:`kqueue.KQueue.job_result`, waited for on a thread (it polls the store)."""
        return await asyncio.to_thread(self.queue.job_result, key, timeout=timeout)

    async def job_failures(self, key: str) -> list[AttemptFailure]:
        """:meth:`kqueue.KQueue.job_failures`, on a thread."""
        return await asyncio.to_thread(self.queue.job_failures, key)

    async def job_stats(self, job: Job | int) -> JobStats:
        """beanstalkd's stats-job for a job (or job id); JobNotFoundError if it is gone."""
        return await asyncio.to_thread(self.queue.job_stats, job)


def _reserved(job: Job) -> AsyncBeanstalkConnection:
    if not isinstance(job, AsyncJob) or job.aio_connection is None:
        raise JobNotFoundError(f"job {job.id} was not reserved by an asyncio worker")
    return job.aio_connection


def _generation(job: Job) -> int:
    return job.generation if isinstance(job, AsyncJob) else 0
