"""Running one job on asyncio, and settling it the way the sync runner does.

A handler that returns has its job deleted (record first, then beanstalkd); one that raises
has its outcome decided by the middleware (:class:`~kqueue.middleware.retries.Retries` by
default: released with a backoff, buried at the budget), and the attempt recorded on the
store. ``async def`` handlers run on the loop, each inside its TTR: one still running when
its TTR is about to end is cancelled and counted as a failed attempt, unless its type is
auto-touched (then it is touched every half TTR and runs as long as it needs). Plain
handlers run in a worker thread (``asyncio.to_thread``), which cannot be cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from kqueue.aio.prepare import AsyncJob
from kqueue.aio.stores import AsyncStore
from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.commands import Call
from kqueue.errors import KQueueError, PayloadError, StoreError
from kqueue.middleware.base import Fail, Failure, Middleware, SkipJob
from kqueue.results import attempt_failure, keep_result, record_failure
from kqueue.retry import RetryPolicy
from kqueue.run_rules import describe_error, log_buried, log_failed, log_skipped, never_finished
from kqueue.runner import HandlerSpec
from kqueue.serialization import CodecRegistry

__all__ = ["AsyncJobRunner", "KeyBatcher", "is_async_handler"]

logger = logging.getLogger("kqueue")

T = TypeVar("T")

MAX_RERUN_DELAY = 60
"""Seconds, at most, before a finished job whose record could not be deleted runs again."""


def is_async_handler(handler: object) -> bool:
    """True for an ``async def`` function (or an object whose ``__call__`` is one)."""
    call = getattr(handler, "__call__", None)  # noqa: B004 (an object's own __call__)
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class KeyBatcher:
    """Coalesces the record deletes of jobs finishing together into one store call each
    time the previous call returns; every caller awaits its own key's outcome."""

    def __init__(self, flush: Callable[[list[str]], Awaitable[int]]) -> None:
        self._flush = flush
        self._batch: list[tuple[str, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, key: str) -> None:
        """Delete ``key`` with the next batch; raises the batch's error."""
        future = asyncio.get_running_loop().create_future()
        self._batch.append((key, future))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        await future

    async def _run(self) -> None:
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    await self._flush([key for key, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._task = None


class AsyncJobRunner:
    """Runs one prepared job's handler and settles its outcome on its connection."""

    def __init__(
        self,
        *,
        store: AsyncStore | None,
        retry: RetryPolicy,
        events: Middleware,
        codecs: CodecRegistry,
    ) -> None:
        self.store = store
        self.retry = retry
        self.events = events
        self.codecs = codecs
        self.store_failures = 0
        self._deletes = None if store is None else KeyBatcher(store.delete_many)

    async def run(self, job: AsyncJob, spec: HandlerSpec) -> None:
        """Run ``job``'s handler (see the module docstring); errors are logged, not raised."""
        policy = spec.retry or self.retry
        if job.attempts > policy.max_attempts:
            await self._bury(job, never_finished(job), job.attempts - 1)
            return
        try:
            self.events.before_job(job)
        except (Fail, SkipJob) as stopped:
            self.events.after_handler(job, stopped)
            await self._stopped_before(job, spec, stopped)
            return
        started = time.perf_counter()
        try:
            await self._keep_result(job, spec, await self._call(job, spec))
        except Exception as exc:
            seconds = time.perf_counter() - started
            self.events.after_handler(job, exc)
            log_failed(job, exc, seconds)
            if not job.finished:
                await self._settle_failure(job, spec, exc)
            self.events.on_failure(job, exc, seconds)
            return
        seconds = time.perf_counter() - started
        self.events.after_handler(job, None)
        if not job.finished:
            await self.complete(job)
        self.events.after_job(job, seconds)

    async def _call(self, job: AsyncJob, spec: HandlerSpec) -> object:
        """What the handler returned."""
        if not is_async_handler(spec.handler):
            return await asyncio.to_thread(spec.handler, job)
        if spec.auto_touch:
            async with _touching(job):
                return await spec.handler(job)
        loop = asyncio.get_running_loop()
        budget = job.reserved_at + job.ttr - min(1.0, job.ttr / 4) - loop.time()
        try:
            return await asyncio.wait_for(spec.handler(job), max(0.0, budget))
        except asyncio.TimeoutError:
            raise TimeoutError(f"handler ran out of its TTR of {job.ttr} s: cancelled") from None

    async def _keep_result(self, job: AsyncJob, spec: HandlerSpec, value: object) -> None:
        """Keep the return value when the job's type keeps results (on a thread: the sync
        store's write); a value the codec cannot encode fails the job at once."""
        if spec.keep_result is None or self.store is None or not job.stored:
            return
        try:
            await asyncio.to_thread(
                keep_result, self.store.sync, self.codecs, job.key, value, spec.keep_result
            )
        except PayloadError as exc:
            raise Fail(str(exc)) from exc

    async def complete(self, job: AsyncJob) -> None:
        """Delete a finished job: its record first, then the job (so a crash between drops a
        reference, never reruns). A record the store would not delete keeps its job, released
        to run again after a growing delay."""
        job.outcome = "deleted"
        if job.stored and self._deletes is not None:
            try:
                await self._deletes.submit(job.key)
                self.store_failures = 0
            except StoreError as exc:
                self.store_failures += 1
                logger.error("job %s: cannot delete its finished record: %s", job.id, exc)
                delay = min(MAX_RERUN_DELAY, 2 ** (self.store_failures - 1))
                await _held(job, cmd.release(job.id, priority=job.priority, delay=delay))
                job.outcome = "released"
                return
        await _held(job, cmd.delete(job.id))

    async def _stopped_before(self, job: AsyncJob, spec: HandlerSpec, stopped: Exception) -> None:
        if isinstance(stopped, SkipJob):
            await self.complete(job)
            self.events.on_dropped(job.id, job.key, "skipped")
            log_skipped(job, stopped)
        else:
            await self._settle_failure(job, spec, stopped)
            self.events.on_failure(job, stopped, 0.0)

    async def _settle_failure(self, job: AsyncJob, spec: HandlerSpec, exc: Exception) -> None:
        failure = Failure(job, exc, spec.retry)
        self.events.decide_failure(failure)
        error = describe_error(exc)
        if job.stored and self.store is not None:
            try:
                await asyncio.to_thread(
                    record_failure,
                    self.store.sync,
                    job.key,
                    attempt_failure(exc, job.attempts),
                    attempts=job.attempts,
                    error=error,
                    buried=failure.bury,
                    keep_for=spec.keep_result,
                )
            except KQueueError as store_exc:
                logger.error("job %s: cannot record the failure: %s", job.id, store_exc)
        if failure.bury:
            await _held(job, cmd.bury(job.id, priority=job.priority))
            job.outcome = "buried"
            log_buried(job, failure.reason, error)
            self.events.on_buried(job, failure.reason)
        else:
            await _held(job, cmd.release(job.id, priority=job.priority, delay=failure.delay))
            job.outcome = "released"
            self.events.on_retried(job, failure.delay)

    async def _bury(self, job: AsyncJob, reason: str, attempts: int) -> None:
        if job.stored and self.store is not None:
            await self.store.record_attempt(
                job.key, attempts=attempts, last_error=reason, state="buried", now=time.time()
            )
        await _held(job, cmd.bury(job.id, priority=job.priority))
        job.outcome = "buried"
        log_buried(job, reason)
        self.events.on_buried(job, reason)


async def _held(job: AsyncJob, call: Call[T]) -> T:
    """Run a command about ``job`` on the socket that reserved it (never on a successor)."""
    if job.aio_connection is None:
        raise KQueueError(f"job {job.id} was not reserved by an asyncio worker")
    return await job.aio_connection.run(call, held=job.generation)


@contextlib.asynccontextmanager
async def _touching(job: AsyncJob) -> AsyncIterator[None]:
    """Touch ``job`` every half TTR while the block runs."""

    async def touch_forever() -> None:
        while True:
            await asyncio.sleep(max(0.2, job.ttr / 2))
            try:
                if not await _held(job, cmd.touch(job.id)):
                    return
            except KQueueError as exc:
                logger.warning("job %s: automatic touch failed: %s", job.id, exc)
                return

    toucher = asyncio.get_running_loop().create_task(touch_forever())
    try:
        yield
    finally:
        toucher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await toucher
