"""The per-client timers of the fake server's state: TTRs, safety margins, reserve timeouts.

beanstalkd keeps one heap of connections keyed by the time each must next be looked at
(connsched); :meth:`ClientTimers.tick` does what its prottick does with delayed jobs,
paused tubes and that heap, and :meth:`ClientTimers.next_deadline` says when it is next
needed. Stale heap entries are skipped by a sequence number instead of being removed.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from fakebeanstalk import protocol as p
from fakebeanstalk.clock import NS_PER_SECOND, Clock
from fakebeanstalk.model import Client, Job, Tube

__all__ = ["ClientTimers"]


class ClientTimers:
    """Timer handling, mixed into :class:`~fakebeanstalk.state.ServerState`."""

    clock: Clock
    tubes: list[Tube]
    connections: int
    timeouts: int
    _ticks: list[tuple[int, int, Client]]
    _tick_seq: int

    if TYPE_CHECKING:  # provided by ServerState

        def reply(self, client: Client, data: bytes) -> None: ...
        def _enqueue(self, job: Job, delay: int, *, journal: bool = False) -> None: ...
        def _unreserve(self, client: Client, job: Job) -> None: ...
        def _remove_waiting(self, client: Client) -> None: ...
        def _process_queue(self) -> None: ...

    def _soonest(self, client: Client) -> Job | None:
        if client.soonest is None:
            for job in client.reserved.values():
                if client.soonest is None or job.deadline_at < client.soonest.deadline_at:
                    client.soonest = job
        return client.soonest

    def _schedule(self, client: Client) -> None:
        """beanstalkd's connsched(): when must this client's timers be looked at?"""
        at: int | None = None
        if client.reserved:
            soonest = self._soonest(client)
            assert soonest is not None
            at = soonest.deadline_at - (p.SAFETY_MARGIN_NS if client.waiting else 0)
        if client.pending_timeout >= 0:
            timeout_at = self.clock.now_ns() + client.pending_timeout * NS_PER_SECOND
            at = timeout_at if at is None else min(at, timeout_at)
        if at is None:
            client.tick_seq = None
            return
        self._tick_seq += 1
        client.tick_seq = self._tick_seq
        heapq.heappush(self._ticks, (at, self._tick_seq, client))
        if len(self._ticks) > 2 * self.connections + 64:
            self._ticks = [t for t in self._ticks if t[2].tick_seq == t[1]]
            heapq.heapify(self._ticks)

    def _deadline_soon(self, client: Client, now: int) -> bool:
        soonest = self._soonest(client)
        return soonest is not None and now >= soonest.deadline_at - p.SAFETY_MARGIN_NS

    def next_deadline(self) -> int | None:
        """The earliest time at which :meth:`tick` has something to do, or None."""
        ticks = self._ticks
        while ticks and ticks[0][2].tick_seq != ticks[0][1]:
            heapq.heappop(ticks)
        nearest = ticks[0][0] if ticks else None
        for tube in self.tubes:
            job = tube.delayed.first()
            if job is not None and (nearest is None or job.deadline_at < nearest):
                nearest = job.deadline_at
            if tube.pause and (nearest is None or tube.unpause_at < nearest):
                nearest = tube.unpause_at
        return nearest

    def tick(self) -> None:
        """Fire what is due now: delayed jobs, pause ends, then client timers (prottick)."""
        now = self.clock.now_ns()
        while True:
            best: Job | None = None
            for tube in self.tubes:
                job = tube.delayed.first()
                if job is not None and (best is None or job.deadline_at < best.deadline_at):
                    best = job
            if best is None or best.deadline_at > now:
                break
            best.tube.delayed.remove(best)
            self._enqueue(best, 0)
        for tube in list(self.tubes):
            if tube.pause and tube.unpause_at <= now:
                tube.pause = 0
                self._process_queue()
        ticks = self._ticks
        while ticks and ticks[0][0] <= now:
            _, seq, client = heapq.heappop(ticks)
            if client.tick_seq == seq:
                client.tick_seq = None
                self._client_timeout(client, now)

    def _client_timeout(self, client: Client, now: int) -> None:
        """beanstalkd's conn_timeout(): safety margin, TTR expiry, reserve timeout."""
        deadline_soon = client.waiting and self._deadline_soon(client, now)
        while True:
            job = self._soonest(client)
            # beanstalkd expires when now > deadline; at exactly the deadline (only a fake
            # clock lands there) we expire too, as real time would an instant later.
            if job is None or job.deadline_at > now:
                break
            self.timeouts += 1
            job.timeouts += 1
            self._unreserve(client, job)
            self._enqueue(job, 0)
            self._schedule(client)
        if deadline_soon:
            self._remove_waiting(client)
            self.reply(client, p.DEADLINE_SOON)
        elif client.waiting and client.pending_timeout >= 0:
            client.pending_timeout = -1
            self._remove_waiting(client)
            self.reply(client, p.TIMED_OUT)
