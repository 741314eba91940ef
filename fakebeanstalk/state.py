"""Tubes, jobs and clients of one fake beanstalkd, as a state machine with no I/O.

The rules are beanstalkd 1.12's (prot.c, conn.c, tube.c, ms.c). Time comes from a
:class:`~fakebeanstalk.clock.Clock` in integer nanoseconds; :meth:`ServerState.tick` does
what beanstalkd's ``prottick`` does (delays, pauses, per-client timers) and
:meth:`ServerState.next_deadline` tells when it is next needed. Replies go to each
:class:`Client`'s ``outbox``; clients that got output are collected in ``dirty``.

Tube lifetimes live in :mod:`fakebeanstalk.tubes`, the timers in :mod:`fakebeanstalk.timers`,
the binlog in :mod:`fakebeanstalk.binlog`; stats rendering and inspection in
:mod:`fakebeanstalk.stats` and :mod:`fakebeanstalk.inspection`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from fakebeanstalk import protocol as p
from fakebeanstalk.binlog.wal import Wal
from fakebeanstalk.clock import NS_PER_SECOND, Clock, wall_offset
from fakebeanstalk.model import Client, Job, JobState, Tube
from fakebeanstalk.timers import ClientTimers
from fakebeanstalk.tubes import TubeRegistry

__all__ = ["Client", "Job", "JobState", "ServerState", "Tube"]


class ServerState(TubeRegistry, ClientTimers):
    """Everything one beanstalkd process holds in memory, and the commands acting on it."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_job_size: int = p.DEFAULT_MAX_JOB_SIZE,
        wal: Wal | None = None,
    ) -> None:
        """A fresh server: only the ``default`` tube, ids from 1, a new random ``id``.

        ``wal`` is the binlog the server journals to (see :mod:`fakebeanstalk.replay` for
        reading one back); without it nothing is journaled.
        """
        self.clock = clock
        self.wal = wal if wal is not None else Wal(None, wall_offset=wall_offset(clock))
        self.max_job_size = min(max_job_size, p.MAX_JOB_SIZE_LIMIT)
        self.instance_id = os.urandom(8).hex()
        self.started_at = clock.now_ns()
        self.draining = False
        self.tubes = []
        self._tube_index = {}
        self.jobs: dict[int, Job] = {}
        self.next_id = 1
        self.ops = dict.fromkeys(p.COMMAND_NAMES, 0)
        self.ready_count = self.urgent = self.reserved = self.buried = 0
        self.timeouts = self.total_jobs = self.waiting = 0
        self.connections = self.total_connections = self.producers = self.workers = 0
        self.dirty: set[Client] = set()
        self._ticks: list[tuple[int, int, Client]] = []
        self._tick_seq = 0
        self.default_tube = self._find_or_make("default")
        self.default_tube.refs += 1  # never destroyed

    # -- clients -----------------------------------------------------------------------
    def connect(self) -> Client:
        """A new client, using and watching ``default``."""
        tube = self.default_tube
        self.total_connections += 1
        self.connections += 1
        client = Client(self.total_connections, tube)
        tube.refs += 2
        tube.watching += 1
        tube.using += 1
        return client

    def disconnect(self, client: Client) -> None:
        """A closed connection: its reserved jobs go back to ready at once."""
        if client.closed:
            return
        client.closed = True
        self.producers -= client.producer
        self.workers -= client.worker
        self.connections -= 1
        self._remove_waiting(client)
        for job in list(client.reserved.values()):
            del client.reserved[job.id]
            self._enqueue(job, 0)
            self.reserved -= 1
            job.tube.reserved -= 1
        client.soonest = None
        watch = client.watch
        while watch:  # ms_clear: delete index 0 by swap-remove, repeatedly
            tube = watch[0]
            watch[0] = watch[-1]
            watch.pop()
            tube.watching -= 1
            self._dref(tube)
        client.use.using -= 1
        self._dref(client.use)
        client.tick_seq = None
        self.dirty.discard(client)

    def reply(self, client: Client, data: bytes) -> None:
        """Queue ``data`` for the client and reschedule its timers (beanstalkd's reply())."""
        client.outbox += data
        self.dirty.add(client)
        self._schedule(client)

    def _set_worker(self, client: Client) -> None:
        if not client.worker:
            client.worker = True
            self.workers += 1

    # -- job movements -------------------------------------------------------------------
    def _enqueue(self, job: Job, delay: int, *, journal: bool = False) -> None:
        job.reserver = None
        tube = job.tube
        if delay:
            job.deadline_at = self.clock.now_ns() + delay
            tube.delayed.push(job.deadline_at, job)
            job.state = JobState.DELAYED
        else:
            tube.ready.push(job.pri, job)
            job.state = JobState.READY
            self.ready_count += 1
            if job.pri < p.URGENT_THRESHOLD:
                self.urgent += 1
                tube.urgent += 1
        if journal:
            self._journal(job)
        self._process_queue()

    def _journal(self, job: Job) -> None:
        """Write the job's record to the binlog (beanstalkd's walwrite + walmaint)."""
        self.wal.write(job)
        self.wal.maintain()

    def _bury(self, job: Job) -> None:
        job.tube.buried[job.id] = job
        self.buried += 1
        job.state = JobState.BURIED
        job.reserver = None
        job.buries += 1

    def _remove_ready(self, job: Job) -> None:
        job.tube.ready.remove(job)
        self.ready_count -= 1
        if job.pri < p.URGENT_THRESHOLD:
            self.urgent -= 1
            job.tube.urgent -= 1

    def _remove_buried(self, job: Job) -> None:
        del job.tube.buried[job.id]
        self.buried -= 1

    def _take(self, job: Job) -> None:
        """Remove a ready, buried or delayed job from its queue."""
        if job.state == JobState.READY:
            self._remove_ready(job)
        elif job.state == JobState.BURIED:
            self._remove_buried(job)
        else:
            job.tube.delayed.remove(job)

    def _unreserve(self, client: Client, job: Job) -> None:
        del client.reserved[job.id]
        self.reserved -= 1
        job.tube.reserved -= 1
        job.reserver = None
        client.soonest = None

    def _reserve_for(self, client: Client, job: Job) -> None:
        job.tube.reserved += 1
        self.reserved += 1
        job.reserves += 1
        job.deadline_at = self.clock.now_ns() + job.ttr
        job.state = JobState.RESERVED
        client.reserved[job.id] = job
        job.reserver = client
        client.pending_timeout = -1
        if client.soonest is None or job.deadline_at < client.soonest.deadline_at:
            client.soonest = job

    def _free(self, job: Job) -> None:
        del self.jobs[job.id]
        job.state = JobState.INVALID
        self._dref(job.tube)

    def _remove_waiting(self, client: Client) -> None:
        if not client.waiting:
            return
        client.waiting = False
        self.waiting -= 1
        for tube in client.watch:
            tube.waiting.remove(client)

    def _next_awaited_job(self, now: int) -> Job | None:
        best: Job | None = None
        for tube in self.tubes:
            if tube.pause:
                if tube.unpause_at > now:
                    continue
                tube.pause = 0
            if tube.waiting.items and tube.ready.live:
                job = tube.ready.first()
                assert job is not None
                if best is None or (job.pri, job.id) < (best.pri, best.id):
                    best = job
        return best

    def _process_queue(self) -> None:
        """Hand the best ready jobs to waiting clients (beanstalkd's process_queue)."""
        now = self.clock.now_ns()
        while self.waiting:
            job = self._next_awaited_job(now)
            if job is None:
                return
            self._remove_ready(job)
            client = job.tube.waiting.take()
            self._remove_waiting(client)
            self._reserve_for(client, job)
            self.reply(client, p.job_reply(p.RESERVED_WORD, job.id, job.body))

    # -- commands --------------------------------------------------------------------------
    def count(self, op: str) -> None:
        """Count a parsed command in ``cmd-<op>``."""
        self.ops[op] += 1

    def begin_put(self, client: Client, pri: int, delay: int, ttr: int) -> Job:
        """Accept a put line: the id is taken now, the body is still to come."""
        if not client.producer:
            client.producer = True
            self.producers += 1
        ttr_ns = max(ttr * NS_PER_SECOND, NS_PER_SECOND)
        job = Job(self.next_id, client.use, pri, delay * NS_PER_SECOND, ttr_ns, self.clock.now_ns())
        self.next_id += 1
        client.use.refs += 1
        self.jobs[job.id] = job
        return job

    def abort_put(self, job: Job) -> None:
        """Forget a put whose body never came (connection closed)."""
        self._free(job)

    def finish_put(self, job: Job, data: bytes) -> bytes:
        """The body (with its CRLF) arrived: insert the job; returns the reply."""
        if data[-2:] != b"\r\n":
            self._free(job)
            return p.EXPECTED_CRLF
        if self.draining:
            self._free(job)
            return p.DRAINING
        job.body = data[:-2]
        self.wal.reserve_put(job)
        self._enqueue(job, job.delay, journal=True)
        self.total_jobs += 1
        job.tube.total_jobs += 1
        return p.inserted(job.id)

    def find_job(self, job_id: int) -> Job | None:
        """A job in any state but in-flight, or None."""
        job = self.jobs.get(job_id)
        return None if job is None or job.state == JobState.INVALID else job

    def reserve(self, client: Client, timeout: int) -> None:
        """reserve / reserve-with-timeout (``timeout`` < 0: none); the reply may come later."""
        self._set_worker(client)
        now = self.clock.now_ns()
        if self._deadline_soon(client, now) and not any(t.ready.live for t in client.watch):
            self.reply(client, p.DEADLINE_SOON)
            return
        client.waiting = True
        self.waiting += 1
        for tube in client.watch:
            tube.waiting.items.append(client)
        client.pending_timeout = timeout
        self._schedule(client)
        self._process_queue()

    def stop_waiting(self, client: Client) -> None:
        """The waiting client half-closed its socket: it gets ``TIMED_OUT``."""
        if client.waiting:
            client.pending_timeout = -1
            self._remove_waiting(client)
            self.reply(client, p.TIMED_OUT)

    def reserve_job(self, client: Client, job_id: int) -> Job | None:
        """reserve-job: take a ready, delayed or buried job whatever its tube."""
        job = self.find_job(job_id)
        if job is None or job.state == JobState.RESERVED:
            return None
        self._take(job)
        self._set_worker(client)
        self._reserve_for(client, job)
        return job

    def delete(self, client: Client, job_id: int) -> bool:
        """delete: own reserved, ready, buried or delayed jobs."""
        job = self.find_job(job_id)
        if job is None:
            return False
        if job.state == JobState.RESERVED:
            if job.reserver is not client:
                return False
            self._unreserve(client, job)
        else:
            self._take(job)
        job.tube.deletes += 1
        job.state = JobState.INVALID  # the binlog's delete record
        self._journal(job)
        self._free(job)
        return True

    def _own_reserved(self, client: Client, job_id: int) -> Job | None:
        job = client.reserved.get(job_id)
        if job is not None:
            self._unreserve(client, job)
        return job

    def release(self, client: Client, job_id: int, pri: int, delay: int) -> bool:
        """release a job this client reserved, with a new priority and delay."""
        job = self._own_reserved(client, job_id)
        if job is None:
            return False
        if delay:  # only a release with a delay is journaled
            self.wal.reserve_update(job)
        job.pri = pri
        job.delay = delay * NS_PER_SECOND
        job.releases += 1
        self._enqueue(job, job.delay, journal=job.delay > 0)
        return True

    def bury(self, client: Client, job_id: int, pri: int) -> bool:
        """bury a job this client reserved."""
        job = self._own_reserved(client, job_id)
        if job is None:
            return False
        self.wal.reserve_update(job)
        job.pri = pri
        self._bury(job)
        self._journal(job)
        return True

    def touch(self, client: Client, job_id: int) -> bool:
        """touch: restart the TTR of a job this client reserved."""
        job = client.reserved.get(job_id)
        if job is None:
            return False
        job.deadline_at = self.clock.now_ns() + job.ttr
        client.soonest = None
        return True

    def _kick(self, job: Job) -> None:
        self.wal.reserve_update(job)
        self._take(job)
        job.kicks += 1
        self._enqueue(job, 0, journal=True)

    def kick(self, client: Client, bound: int) -> int:
        """kick: buried jobs of the used tube if any, else delayed ones."""
        tube = client.use
        kicked = 0
        if tube.buried:
            while kicked < bound and tube.buried:
                self._kick(next(iter(tube.buried.values())))
                kicked += 1
            return kicked
        while kicked < bound and tube.delayed.live:
            job = tube.delayed.first()
            assert job is not None
            self._kick(job)
            kicked += 1
        return kicked

    def kick_job(self, job_id: int) -> bool:
        """kick-job: a buried or delayed job, whatever its tube."""
        job = self.find_job(job_id)
        if job is None or job.state not in (JobState.BURIED, JobState.DELAYED):
            return False
        self._kick(job)
        return True

    def iter_jobs(self) -> Iterator[Job]:
        """Every job but in-flight puts, by id."""
        for job_id in sorted(self.jobs):
            job = self.jobs[job_id]
            if job.state != JobState.INVALID:
                yield job

    # -- binlog replay (see fakebeanstalk.replay) ------------------------------------------
    def replay_bury(self, job: Job) -> None:
        """Put a replayed job in its tube's buried list."""
        self._bury(job)

    def replay_enqueue(self, job: Job, delay: int) -> None:
        """Put a replayed job in its tube's ready or delayed queue."""
        self._enqueue(job, delay)

    def forget(self, job: Job) -> None:
        """Free a job read back from the binlog and then found deleted."""
        self._free(job)
