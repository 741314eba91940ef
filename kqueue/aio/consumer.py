"""The asyncio worker's loop: up to ``concurrency`` jobs in flight on one event loop, taken
from every beanstalkd server of the queue.

beanstalkd answers a connection's commands in order, so a connection waiting in a blocking
reserve could not carry the deletes and touches of the jobs it holds. Each server therefore
has a few connections: one with no job in hand waits in ``reserve`` (never polls); when a
job comes it takes as many more as there is room for in the same burst
(``reserve-with-timeout 0``), and the jobs run as tasks, settled on that connection, which
goes back to the server's idle ones when its last job is settled.

Over several servers (``servers=[...]``) one such loop runs per server, all on the same
event loop, sharing the jobs in flight, ``concurrency`` and ``count_limit``. A loop sends a
reserve only while there is room (jobs running plus jobs in hand below ``concurrency``, and
below what ``count_limit`` leaves), and bursts only up to that room, so every server has a
reserve waiting whenever there is room and a job landing on any of them starts at once. Two
loops may each get a job for the last free place: the later one holds its job until a place
frees (at most ``servers - 1`` jobs in hand beyond ``concurrency``, never one running beyond
it), for at most half the job's TTR; a job that finds no place by then, or that
``count_limit`` no longer allows, or that stop() finds waiting, is released untouched (no
attempt counted). A server that fails has its loop back off and retry alone; the others go
on. Jobs run in each server's own priority order; across servers nothing is ordered.

Stopping ends every wait at once (closing a waiting connection: a job reserved meanwhile
goes straight back to ready) and lets the jobs in flight finish; cancelling the run instead
(a forced stop) cancels them, and closing their connections hands their jobs back. Either
way no job is lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
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

_GREETING = 1.0
"""Seconds a run waits for its servers' first answers before it starts reserving."""


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


class _Lane:
    """One server of a run: its idle connections, and its id while it answers."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.idle: list[AsyncBeanstalkConnection] = []
        self.server_id: str | None = None


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
        self._lanes = [_Lane(address) for address in config.addresses]
        self._holding: dict[AsyncBeanstalkConnection, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_hand = 0  # jobs reserved and prepared, neither started nor handed back
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
        """Run jobs, up to ``concurrency`` at once, from every server of the queue; how many
        handlers ran (the limits are those of :meth:`kqueue.KQueue.run_jobs`)."""
        for name, value in (("count_limit", count_limit), ("time_limit_ms", time_limit_ms)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name} must be an int")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError("concurrency must be an int of at least 1")
        tubes = [self.config.tube_prefix + t for t in (job_types or self.handlers)]
        loop = asyncio.get_running_loop()
        limits = _Limits(count_limit, time_limit_ms, loop.time())
        self._room, self._stopping = asyncio.Event(), asyncio.Event()  # on this run's loop
        self.ran, self._in_hand = 0, 0
        await self._greet()
        loops = [
            loop.create_task(self._loop(lane, tubes, limits, concurrency)) for lane in self._lanes
        ]
        try:
            await asyncio.gather(*loops)
            await self._settle_in_flight()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._close_all()
        return self.ran

    async def _greet(self) -> None:
        """Connect to every server at once, to know the ids of those answering before the
        first window is prepared (see :meth:`_live_ids`); a server slower than
        :data:`_GREETING` is left to its loop."""
        lanes = [lane for lane in self._lanes if not lane.idle]
        conns = [new_async_connection(self.config, lane.address) for lane in lanes]
        greetings = [asyncio.ensure_future(conn.server_id()) for conn in conns]
        await asyncio.wait(greetings, timeout=_GREETING)
        for lane, conn, greeting in zip(lanes, conns, greetings, strict=True):
            if greeting.done() and greeting.exception() is None:
                lane.server_id = greeting.result()
                lane.idle.append(conn)
            else:
                greeting.cancel()
                conn.close()

    def _free(self, limits: _Limits, concurrency: int) -> int:
        """How many more jobs may be reserved now (by any server's loop)."""
        free = concurrency - len(self._tasks) - self._in_hand
        return free if limits.left < 0 else min(free, limits.left - self._in_hand)

    async def _loop(self, lane: _Lane, tubes: list[str], limits: _Limits, concurrency: int) -> None:
        """Take jobs from one server until the limits are reached or stop() is called."""
        backoff = self.config.reconnect_delay[0]
        while limits.left != 0 and not self._stopping.is_set():
            if self._free(limits, concurrency) <= 0:
                await self._wait(self._room.wait(), None)
                self._room.clear()
                continue
            wait = limits.wait(asyncio.get_running_loop().time(), self.config.heartbeat)
            if wait is None:
                return
            settled = self._settled  # jobs settled before this reserve was sent
            try:
                started = await self._take_window(lane, tubes, wait, limits, concurrency)
            except (BrokerError, StoreError) as exc:
                lane.server_id = None
                if limits.drain and isinstance(exc, BrokerError) and len(self._lanes) > 1:
                    logger.warning("worker: %s; left out of this run", exc)
                    return  # as the sync worker's burst: what the others have is run
                logger.warning("worker: %s; retrying in %.2f s", exc, backoff)
                await self._wait(asyncio.sleep(backoff), None)
                backoff = min(backoff * 2, self.config.reconnect_delay[1])
                continue
            backoff = self.config.reconnect_delay[0]
            if started == 0 and limits.drain:
                if not self._tasks and not self._in_hand and self._settled == settled:
                    return  # nothing ready, and nothing released since the reserve
                if self._tasks or self._in_hand:
                    await self._wait(self._room.wait(), None)  # what runs may release more
                    self._room.clear()

    async def _take_window(
        self, lane: _Lane, tubes: list[str], wait: float, limits: _Limits, concurrency: int
    ) -> int:
        """Reserve what there is room for on ``lane``'s server (waiting up to ``wait`` s for
        the first job) and start it; how many started."""
        conn = lane.idle.pop() if lane.idle else new_async_connection(self.config, lane.address)
        window: list[ReservedJob] = []
        try:
            lane.server_id = await conn.server_id()  # connects first
            window, held = await self._reserve(
                conn, tubes, wait, lambda: self._free(limits, concurrency)
            )
            self._in_hand += len(window)
            jobs = (
                await self.preparer.prepare(conn, window, held, self._live_ids()) if window else []
            )
        except StoreError:
            self._let_go_in_hand(len(window))
            await _release_unread(conn, window)
            conn.close()
            raise
        except BaseException:
            self._let_go_in_hand(len(window))
            conn.close()  # whatever it reserved goes back to ready at once
            raise
        ready = [job for job in jobs if job is not None]
        self._let_go_in_hand(len(window) - len(ready))
        if not ready:
            lane.idle.append(conn)
            return 0
        self._holding[conn] = len(ready)
        return await self._start(lane, conn, ready, limits, concurrency)

    async def _start(
        self,
        lane: _Lane,
        conn: AsyncBeanstalkConnection,
        jobs: list[AsyncJob],
        limits: _Limits,
        concurrency: int,
    ) -> int:
        """Start ``jobs`` as places free up (see the module docstring); those that cannot
        start are released untouched. How many started."""
        started = 0
        give_up_at = min(job.reserved_at + job.ttr / 2 for job in jobs)
        try:
            for job in jobs:
                if not await self._place(concurrency, give_up_at) or limits.left == 0:
                    break
                task = asyncio.get_running_loop().create_task(self._run(lane, conn, job))
                self._tasks.add(task)
                self._in_hand -= 1
                started += 1
                if limits.left > 0:
                    limits.left -= 1
                    if limits.left == 0:
                        self._stopping.set()  # the count is reached: end the others' waits
        except BaseException:
            conn.close()  # a forced stop: every job on it goes back to ready
            raise
        rest = jobs[started:]
        if rest:
            self._let_go_in_hand(len(rest))
            await _hand_back(conn, rest)
            self._let_go(lane, conn, len(rest))
        return started

    async def _place(self, concurrency: int, give_up_at: float) -> bool:
        """Wait until fewer than ``concurrency`` jobs run; False on stop() or at
        ``give_up_at`` (loop time)."""
        loop = asyncio.get_running_loop()
        while len(self._tasks) >= concurrency and not self._stopping.is_set():
            timeout = give_up_at - loop.time()
            if timeout <= 0 or await self._wait(self._room.wait(), timeout) is None:
                return False
            self._room.clear()
        return not self._stopping.is_set()

    def _live_ids(self) -> frozenset[str]:
        """The ids of the servers answering now (a copy whose record names another of them
        is a duplicate: see :func:`kqueue.run_rules.why_not_runnable`)."""
        return frozenset(lane.server_id for lane in self._lanes if lane.server_id is not None)

    def _let_go_in_hand(self, count: int) -> None:
        if count:
            self._in_hand -= count
            self._room.set()

    def _let_go(self, lane: _Lane, conn: AsyncBeanstalkConnection, count: int) -> None:
        """``count`` jobs of ``conn`` settled; back to the idle ones when it holds none."""
        self._holding[conn] -= count
        if not self._holding[conn]:
            del self._holding[conn]
            lane.idle.append(conn)

    async def _reserve(
        self,
        conn: AsyncBeanstalkConnection,
        tubes: list[str],
        wait: float,
        free: Callable[[], int],
    ) -> tuple[list[ReservedJob], int]:
        """Jobs (a first one waited for up to ``wait`` s, then bursts while ``free()``
        allows), and the generation of the socket that reserved them."""
        await _sync_watches(conn, tubes)
        # A whole number of seconds: the server times the wait out itself.
        first = await self._wait(conn.reserve(math.ceil(wait)), None if wait % 1 == 0 else wait)
        held = conn.generation
        if first is None:
            return [], held
        jobs, burst = [first], _FIRST_BURST
        # Growing bursts of reserve-with-timeout 0: a trickle costs a few commands, a
        # backlog a few round trips, never a burst the size of the room for one job.
        while (room := free() - len(jobs)) > 0:
            count = min(burst, room)
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
        try:
            done, _ = await asyncio.wait(
                {task, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # cancelled (a forced stop): so is what it awaited
            task.cancel()
            task.add_done_callback(_observe)
            raise
        finally:
            stopping.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None

    async def _run(self, lane: _Lane, conn: AsyncBeanstalkConnection, job: AsyncJob) -> None:
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
            self._let_go(lane, conn, 1)
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
        for conn in [*(c for lane in self._lanes for c in lane.idle), *self._holding]:
            await conn.aclose()
        for lane in self._lanes:
            lane.idle.clear()
            lane.server_id = None
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


def _observe(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a task nobody awaits any more (no "never retrieved")."""
    if not task.cancelled():
        task.exception()


async def _hand_back(conn: AsyncBeanstalkConnection, jobs: list[AsyncJob]) -> None:
    """Release prepared jobs that will not run here (no place came, the count limit was
    reached, or stop()) untouched; a connection that cannot release them is closed, which
    hands them back too."""
    calls = [cmd.release(job.id, priority=job.priority, delay=0) for job in jobs]
    try:
        await conn.pipeline(calls, held=jobs[0].generation)
    except KQueueError:
        logger.debug("could not release jobs that were not started", exc_info=True)
        conn.close()
