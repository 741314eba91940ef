"""A worker's reserves over several beanstalkd servers: one connection per server ("lane"),
one window fed from all of them, and a blocking wait that wakes on whichever answers first.

A window: every lane's ready count (one pipelined burst per server), then the window's size
(:class:`~kqueue.window.ReserveWindow`) dealt out one job at a time over the lanes that have
ready jobs, starting with a different lane each window, then one reserve burst per lane. The
runner sorts what came back most urgent first (:meth:`~kqueue.runner.JobRunner.run_parts`).
Dealing by turns means no server is starved however busy another is; the price is that a
window holds each server's most urgent jobs, not the most urgent of all servers together.

When no server has a ready job, each idle lane is left a ``reserve-with-timeout`` (the
heartbeat) and the worker waits on all their sockets and its wake-up pipe at once. The first
reply ends the wait; the reserves still outstanding stay so, and a job one of them returns
later joins the next window. A lane with a reserve outstanding is sent nothing else until its
reply is read (any other command would first close the connection, abandoning the reserve:
the server hands a job it took back at once). When the run ends, outstanding reserves are
abandoned the same way, so no job stays held by a worker that no longer waits.

A server that fails (refuses, drops, times out, or answers no heartbeat) has its lane closed
(its reserved jobs go back to ready on that server) and retried after a growing pause; the
other lanes go on meanwhile.
"""

from __future__ import annotations

import logging
import math
import select
import time
from collections.abc import Callable, Sequence

from kqueue.beanstalk.commands import DeadlineSoon
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline, reserve_ready
from kqueue.beanstalk.wire import ReservedJob
from kqueue.config import QueueConfig
from kqueue.errors import BrokerError, BrokerTimeoutError
from kqueue.window import PER_TUBE_COUNTS, ReserveWindow

logger = logging.getLogger("kqueue")

Part = tuple[BeanstalkConnection, list[ReservedJob]]
"""The jobs of a window reserved on one connection."""

_POLL_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


class Lane:
    """One server's connection of a worker, with its outstanding reserve and its backoff."""

    def __init__(self, conn: BeanstalkConnection, first_pause: float) -> None:
        self.conn = conn
        self.answer_by = 0.0  # monotonic: the outstanding reserve's reply is due by then
        self.retry_at = 0.0  # monotonic: a failed lane is left alone until then
        self.first_pause = first_pause
        self.pause = first_pause

    def usable(self, now: float) -> bool:
        return now >= self.retry_at

    def failed(self, exc: BrokerError, longest: float) -> None:
        self.conn.close()  # its reserved jobs go back to ready on that server
        # Said once per outage (the first failure after it worked), then quietly retried.
        level = logging.WARNING if self.pause == self.first_pause else logging.DEBUG
        logger.log(
            level,
            "worker: beanstalkd at %s failed: %s; retrying it from %.2f s on",
            self.conn.address,
            exc,
            self.pause,
        )
        self.retry_at = time.monotonic() + self.pause
        self.pause = min(self.pause * 2, longest)

    def worked(self) -> None:
        self.pause = self.first_pause
        self.retry_at = 0.0


class BondedReserver:
    """Fills windows from every server of ``config``; see the module docstring."""

    def __init__(self, config: QueueConfig, window: ReserveWindow) -> None:
        self.config = config
        self.window = window
        first = config.reconnect_delay[0]
        self.lanes = [Lane(config.new_connection(address), first) for address in config.addresses]
        self._turn = 0

    def live_ids(self) -> frozenset[str]:
        """The server ids of the lanes connected now (what a record naming one of them proves:
        see :func:`kqueue.run_rules.why_not_runnable`)."""
        return frozenset(
            server for lane in self.lanes if (server := lane.conn.known_server_id()) is not None
        )

    def close(self) -> None:
        """Close every lane (abandoning outstanding reserves: their jobs go back)."""
        for lane in self.lanes:
            lane.conn.close()

    def abandon_waits(self) -> None:
        """Close the lanes with a reserve outstanding (at the end of a run: the server hands
        back a job such a reserve took, rather than it waiting for a worker gone)."""
        for lane in self.lanes:
            if lane.conn.reserving:
                lane.conn.close()

    def reserve(
        self,
        wanted: list[str],
        sync_watches: Callable[[BeanstalkConnection, list[str]], None],
        wait: float,
        *,
        wakeup: int,
        room: int | None,
        before_wait: Callable[[], None],
    ) -> list[Part]:
        """Reserve a window over every server; wait up to ``wait`` seconds (0: never) for
        one job when none is ready. ``sync_watches`` makes a lane watch ``wanted``."""
        parts = self._answered(room)
        if not parts:
            parts = self._ready_window(wanted, sync_watches, room)
        if parts or wait <= 0:
            return parts
        before_wait()
        return self._wait(wanted, sync_watches, wait, wakeup, room)

    # -- without waiting -------------------------------------------------------------------

    def _answered(self, room: int | None, lanes: list[Lane] | None = None) -> list[Part]:
        """The jobs outstanding reserves (of ``lanes``: all) returned meanwhile, read without
        blocking; at most ``room`` (the others stay unread for the next window)."""
        parts: list[Part] = []
        for lane in self.lanes if lanes is None else lanes:
            if room is not None and len(parts) >= room:
                break
            job = self._read(lane)
            if job is not None:
                parts.append((lane.conn, [job]))
        return parts

    def _read(self, lane: Lane) -> ReservedJob | None:
        conn = lane.conn
        if not conn.reserving:
            return None
        try:
            answered, job = conn.reserved_reply()
        except DeadlineSoon:
            return None  # a job of its own nears its TTR: the reserve is over, nothing came
        except BrokerError as exc:
            lane.failed(exc, self.config.reconnect_delay[1])
            return None
        if not answered and time.monotonic() > lane.answer_by:
            lane.failed(
                BrokerTimeoutError(f"no answer to a reserve within its timeout and "
                                   f"{self.config.command_timeout:g} s more: frozen or cut off"),
                self.config.reconnect_delay[1],
            )  # fmt: skip
        return job

    def _ready_window(
        self,
        wanted: list[str],
        sync_watches: Callable[[BeanstalkConnection, list[str]], None],
        room: int | None,
    ) -> list[Part]:
        now = time.monotonic()
        counts: list[tuple[Lane, int]] = []
        for lane in self._rotation():
            if lane.conn.reserving or not lane.usable(now):
                continue
            try:
                sync_watches(lane.conn, wanted)
                counts.append((lane, ready_count(lane.conn)))
            except BrokerError as exc:
                lane.failed(exc, self.config.reconnect_delay[1])
        shares = deal(self.window.size(room), [count for _, count in counts])
        parts: list[Part] = []
        for (lane, _), share in zip(counts, shares, strict=True):
            if not share:
                continue
            try:
                got = reserve_ready(lane.conn, share)
            except DeadlineSoon:
                continue
            except BrokerError as exc:
                lane.failed(exc, self.config.reconnect_delay[1])
                continue
            lane.worked()
            if got:
                parts.append((lane.conn, got))
        return parts

    def _rotation(self) -> list[Lane]:
        self._turn = (self._turn + 1) % len(self.lanes)
        return self.lanes[self._turn :] + self.lanes[: self._turn]

    # -- waiting on every server at once ---------------------------------------------------

    def _leave_reserves(
        self, wanted: list[str], sync_watches: Callable[[BeanstalkConnection, list[str]], None]
    ) -> None:
        """A reserve outstanding on every idle lane (the heartbeat its timeout)."""
        heartbeat = max(1, math.ceil(self.config.heartbeat))
        for lane in self._rotation():
            if lane.conn.reserving or not lane.usable(time.monotonic()):
                continue
            try:
                sync_watches(lane.conn, wanted)
                lane.conn.send_reserve(heartbeat)
            except BrokerError as exc:
                lane.failed(exc, self.config.reconnect_delay[1])
                continue
            lane.answer_by = time.monotonic() + heartbeat + self.config.command_timeout
            lane.worked()

    def _wait(
        self,
        wanted: list[str],
        sync_watches: Callable[[BeanstalkConnection, list[str]], None],
        wait: float,
        wakeup: int,
        room: int | None,
    ) -> list[Part]:
        deadline = time.monotonic() + wait
        self._leave_reserves(wanted, sync_watches)
        while True:
            waiting = {fd: lane for lane in self.lanes if (fd := lane.conn.fileno()) is not None
                       and lane.conn.reserving}  # fmt: skip
            now = time.monotonic()
            until = min(
                [deadline]
                + [lane.answer_by for lane in waiting.values()]
                + [lane.retry_at for lane in self.lanes if lane.retry_at > now]
            )
            poller = select.poll()
            poller.register(wakeup, select.POLLIN)
            for fd in waiting:
                poller.register(fd, _POLL_IN)
            events = poller.poll(max(0, math.ceil((until - now) * 1000)))
            parts = self._answered(room, [waiting[fd] for fd, _ in events if fd in waiting])
            if parts or any(fd == wakeup for fd, _ in events) or time.monotonic() >= deadline:
                return parts
            now = time.monotonic()
            due = [lane for lane in self.lanes if lane.retry_at and lane.retry_at <= now]
            if not waiting or due:
                return []  # a lane is due for another try: the caller's next round does it


def ready_count(conn: BeanstalkConnection) -> int:
    """How many jobs are ready in the tubes ``conn`` watches (one pipelined burst), or on
    the whole server when it watches more than a few (as :class:`ReserveWindow` counts)."""
    if conn.watch_count > PER_TUBE_COUNTS:
        return conn.stats()["current-jobs-ready"]
    pipe = Pipeline(conn)
    counts = [pipe.ready_count(tube) for tube in conn.watched]
    pipe.execute()
    return sum(count.result() for count in counts)


def deal(size: int, ready: Sequence[int]) -> list[int]:
    """``size`` jobs dealt one at a time over lanes with ``ready`` jobs each, in order: how
    many each lane reserves (no lane gets more than it has, none is skipped while it has)."""
    shares = [0] * len(ready)
    left = size
    while left > 0:
        dealt = False
        for index, count in enumerate(ready):
            if left > 0 and shares[index] < count:
                shares[index] += 1
                left -= 1
                dealt = True
        if not dealt:
            break
    return shares
