"""The asyncio worker's loop: up to ``concurrency`` jobs in flight on one event loop.

beanstalkd answers a connection's commands in order, so a connection waiting in a blocking
reserve could not carry the deletes and touches of the jobs it holds. The loop therefore
keeps a few connections: one with no job in hand waits in ``reserve`` (never polls); when a
job comes it takes as many more as there is room for in the same burst
(``reserve-with-timeout 0``), and the jobs run as tasks, settled on that connection, which
goes back to the idle ones when its last job is settled. Stopping ends the wait at once
(closing that connection: a job reserved meanwhile goes straight back to ready) and lets the
jobs in flight finish; cancelling the loop instead (a forced stop) cancels them, and closing
their connections hands their jobs back. Either way no job is lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Collection, Mapping
from typing import Any, TypeVar

from kqueue.aio.prepare import AsyncJob, WindowPreparer
from kqueue.aio.producer import new_async_connection
from kqueue.aio.runner import AsyncJobRunner
from kqueue.aio.stores import AsyncStore
from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.aio_connection import AsyncBeanstalkConnection
from kqueue.beanstalk.commands import Call
from kqueue.beanstalk.wire import ReservedJob
from kqueue.config import QueueConfig
from kqueue.errors import BrokerError, KQueueError, StoreError, ValidationError
from kqueue.middleware.base import Middleware
from kqueue.runner import HandlerSpec
from kqueue.serialization import CodecRegistry, decode_body

__all__ = ["AsyncConsumer"]

logger = logging.getLogger("kqueue")

T = TypeVar("T")

_FIRST_BURST = 4
"""Reserves in the first burst after a window's first job (each next burst is 4x)."""


class _Limits:
    """What one run_jobs may still do: how many jobs, until when (loop time)."""

    def __init__(self, count_limit: int, time_limit_ms: int, now: float) -> None:
        self.left = count_limit
        self.drain = time_limit_ms == 0
        self.deadline = None if time_limit_ms < 0 else now + time_limit_ms / 1000

    def wait(self, now: float, heartbeat: float) -> float | None:
        """Seconds a reserve may wait (0: only what is ready); None when time is up."""
        if self.drain:
            return 0.0
        if self.deadline is None:
            return heartbeat
        left = self.deadline - now
        return min(left, heartbeat) if left > 0 else None


class AsyncConsumer:
    """Runs the handlers of a registry on asyncio (see the module docstring)."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        handlers: Mapping[str, HandlerSpec],
        store: AsyncStore | None,
        codecs: CodecRegistry,
        events: Middleware,
    ) -> None:
        self.config = config
        self.handlers = handlers
        self.preparer = WindowPreparer(
            store=store,
            codecs=codecs,
            tube_prefix=config.tube_prefix,
            events=events,
            count_attempts=config.count_lost_attempts,
        )
        self.runner = AsyncJobRunner(store=store, retry=config.retry, events=events, codecs=codecs)
        self._idle: list[AsyncBeanstalkConnection] = []
        self._holding: dict[AsyncBeanstalkConnection, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._stopping = asyncio.Event()
        self._settled = 0
        self.ran = 0

    def stop(self) -> None:
        """Make a running :meth:`run_jobs` stop taking jobs and return once those in flight
        are settled (call it on the loop's thread, or through ``call_soon_threadsafe``)."""
        self._stopping.set()

    async def run_jobs(
        self,
        count_limit: int = -1,
        time_limit_ms: int = -1,
        *,
        job_types: Collection[str] | None = None,
        concurrency: int = 1,
    ) -> int:
        """Run jobs, up to ``concurrency`` at once; how many handlers ran (the limits are
        those of :meth:`kqueue.KQueue.run_jobs`)."""
        for name, value in (("count_limit", count_limit), ("time_limit_ms", time_limit_ms)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name} must be an int")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError("concurrency must be an int of at least 1")
        tubes = [self.config.tube_prefix + t for t in (job_types or self.handlers)]
        limits = _Limits(count_limit, time_limit_ms, asyncio.get_running_loop().time())
        self._room, self._stopping = asyncio.Event(), asyncio.Event()  # on this run's loop
        self.ran = 0
        try:
            await self._loop(tubes, limits, concurrency)
            await self._settle_in_flight()
        finally:
            await self._close_all()
        return self.ran

    async def _loop(self, tubes: list[str], limits: _Limits, concurrency: int) -> None:
        backoff = self.config.reconnect_delay[0]
        while limits.left != 0 and not self._stopping.is_set():
            room = concurrency - len(self._tasks)
            if room <= 0:
                await self._wait(self._room.wait(), None)
                self._room.clear()
                continue
            wait = limits.wait(asyncio.get_running_loop().time(), self.config.heartbeat)
            if wait is None:
                return
            room = room if limits.left < 0 else min(room, limits.left)
            settled = self._settled  # jobs settled before this reserve was sent
            try:
                started = await self._take_window(tubes, wait, room)
            except (BrokerError, StoreError) as exc:
                logger.warning("worker: %s; retrying in %.2f s", exc, backoff)
                await self._wait(asyncio.sleep(backoff), None)
                backoff = min(backoff * 2, self.config.reconnect_delay[1])
                continue
            backoff = self.config.reconnect_delay[0]
            if limits.left > 0:
                limits.left = max(0, limits.left - started)
            if started == 0 and limits.drain:
                if not self._tasks and self._settled == settled:
                    return  # nothing ready, and nothing released since the reserve
                if self._tasks:
                    await self._wait(self._room.wait(), None)  # what runs may release more
                    self._room.clear()

    async def _take_window(self, tubes: list[str], wait: float, room: int) -> int:
        """Reserve up to ``room`` jobs (waiting up to ``wait`` s for the first) and start
        them; how many started."""
        conn = self._idle.pop() if self._idle else new_async_connection(self.config)
        window: list[ReservedJob] = []
        try:
            window, held = await self._reserve(conn, tubes, wait, room)
            jobs = await self.preparer.prepare(conn, window, held) if window else []
        except StoreError:
            await _release_unread(conn, window)
            conn.close()
            raise
        except BaseException:
            conn.close()  # whatever it reserved goes back to ready at once
            raise
        started = [job for job in jobs if job is not None]
        if not started:
            self._idle.append(conn)
            return 0
        self._holding[conn] = len(started)
        for job in started:
            task = asyncio.get_running_loop().create_task(self._run(conn, job))
            self._tasks.add(task)
        return len(started)

    async def _reserve(
        self, conn: AsyncBeanstalkConnection, tubes: list[str], wait: float, room: int
    ) -> tuple[list[ReservedJob], int]:
        """Up to ``room`` jobs, and the generation of the socket that reserved them."""
        await _sync_watches(conn, tubes)
        # A whole number of seconds: the server times the wait out itself.
        first = await self._wait(conn.reserve(math.ceil(wait)), None if wait % 1 == 0 else wait)
        held = conn.generation
        if first is None:
            return [], held
        jobs, burst = [first], _FIRST_BURST
        # Growing bursts of reserve-with-timeout 0: a trickle costs a few commands, a
        # backlog a few round trips, never a burst the size of the room for one job.
        while len(jobs) < room:
            count = min(burst, room - len(jobs))
            more = await conn.pipeline([cmd.reserve_nowait()] * count, held=held)
            got = [job for slot in more if (job := slot.result()) is not None]
            jobs += got
            if len(got) < count:
                break
            burst *= 4
        return jobs, held

    async def _wait(self, awaitable: Awaitable[T], timeout: float | None) -> T | None:
        """Await ``awaitable`` unless stop() comes first or ``timeout`` passes (then cancel
        it: a reserve cancelled closes its connection); None then."""
        task = asyncio.ensure_future(awaitable)
        stopping = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait(
            {task, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        stopping.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None

    async def _run(self, conn: AsyncBeanstalkConnection, job: AsyncJob) -> None:
        try:
            spec = self.handlers.get(job.job_type)
            if spec is None:  # removed since the reserve: handed back untouched
                await conn.run(cmd.release(job.id, priority=job.priority, delay=0))
            else:
                await self.runner.run(job, spec)
                self.ran += 1
        except (BrokerError, StoreError) as exc:
            logger.warning("job %s: %s (the job goes back to beanstalkd)", job.id, exc)
        except Exception:
            logger.exception("job %s: unexpected error settling it", job.id)
        finally:
            self._tasks.discard(asyncio.current_task())
            self._settled += 1
            self._holding[conn] -= 1
            if not self._holding[conn]:
                del self._holding[conn]
                self._idle.append(conn)
            self._room.set()

    async def _settle_in_flight(self) -> None:
        """Wait for the jobs in flight to finish and be settled."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _close_all(self) -> None:
        """Cancel what is still running (a forced stop) and close every connection: the
        jobs they still hold go back to ready."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        for conn in [*self._idle, *self._holding]:
            await conn.aclose()
        self._idle.clear()
        self._holding.clear()


async def _sync_watches(conn: AsyncBeanstalkConnection, wanted: list[str]) -> None:
    """Watch ``wanted`` and nothing else, in one burst (watches first: beanstalkd never lets
    a connection ignore its last tube)."""
    watched = conn.watched
    if watched == wanted:
        return
    have, keep = set(watched), set(wanted)  # a thousand job types: no list scans per tube
    calls: list[Call[Any]] = [cmd.watch(tube) for tube in wanted if tube not in have]
    calls += [cmd.ignore(tube) for tube in watched if tube not in keep]
    await conn.pipeline(calls)


async def _release_unread(conn: AsyncBeanstalkConnection, window: list[ReservedJob]) -> None:
    """Release a window whose records the store could not give (an outage, a failover), so
    that its reserves are no attempts that never finished (closing the connection would
    count one against each job's retry budget). What cannot be released is left to the
    close."""
    bodies = [(reserved.id, decode_body(reserved.body)) for reserved in window]
    calls = [
        cmd.release(job_id, priority=body.priority, delay=0)
        for job_id, body in bodies
        if body is not None
    ]
    if calls:
        try:
            await conn.pipeline(calls)
        except KQueueError:
            logger.debug("could not release the window after a store failure", exc_info=True)
