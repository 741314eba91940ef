"""The objects of a fake beanstalkd's memory: jobs, tubes, clients and their queues."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fakebeanstalk.binlog.wal import WalFile

__all__ = ["Client", "Job", "JobHeap", "JobState", "Tube", "WaitList"]


class JobState:
    """The names of job states, as stats-job prints them."""

    READY = "ready"
    RESERVED = "reserved"
    BURIED = "buried"
    DELAYED = "delayed"
    INVALID = "invalid"  # a put whose body is still being read


class Job:
    """One job. Times are nanoseconds of the server's clock."""

    __slots__ = (
        "_entry",
        "body",
        "buries",
        "created_at",
        "deadline_at",
        "delay",
        "id",
        "kicks",
        "partial",
        "pri",
        "releases",
        "reserver",
        "reserves",
        "state",
        "timeouts",
        "ttr",
        "tube",
        "wal_file",
        "wal_resv",
        "wal_used",
    )

    def __init__(self, job_id: int, tube: Tube, pri: int, delay: int, ttr: int, now: int) -> None:
        """A job in no queue yet (state ``invalid``) with an empty body."""
        self.id = job_id
        self.tube = tube
        self.pri = pri
        self.delay = delay
        self.ttr = ttr
        self.body = b""
        self.created_at = now
        self.state = JobState.INVALID
        self.deadline_at = 0
        self.reserver: Client | None = None
        self.reserves = self.timeouts = self.releases = self.buries = self.kicks = 0
        self._entry: list[object] | None = None
        self.wal_file: WalFile | None = None
        """The binlog file holding the job's newest full record (beanstalkd's ``file``)."""
        self.wal_resv = self.wal_used = 0
        self.partial: Callable[[], bytes] | None = None
        """While the body is arriving: the body buffer as it stands (size + 2 bytes)."""


class JobHeap:
    """A binary heap of jobs keyed (key, id), with O(1) lazy removal."""

    __slots__ = ("_heap", "_seq", "live")

    def __init__(self) -> None:
        """An empty heap."""
        self._heap: list[list[object]] = []
        self._seq = 0
        self.live = 0

    def push(self, key: int, job: Job) -> None:
        """Insert ``job`` under ``(key, job.id)``."""
        self._seq += 1
        # The sequence number keeps a stale entry of the same job from ever being compared.
        entry: list[object] = [key, job.id, self._seq, job]
        job._entry = entry
        heapq.heappush(self._heap, entry)
        self.live += 1

    def remove(self, job: Job) -> None:
        """Take ``job`` out (it stays in the list as a dead entry until popped)."""
        entry = job._entry
        if entry is not None:
            entry[3] = None
            job._entry = None
            self.live -= 1
            if len(self._heap) > 2 * self.live + 64:
                self._heap = [e for e in self._heap if e[3] is not None]
                heapq.heapify(self._heap)

    def first(self) -> Job | None:
        """The job with the smallest key, or None."""
        heap = self._heap
        while heap and heap[0][3] is None:
            heapq.heappop(heap)
        if not heap:
            return None
        job = heap[0][3]
        assert isinstance(job, Job)
        return job

    def jobs(self) -> list[Job]:
        """Live jobs in key order."""
        live = [e for e in self._heap if e[3] is not None]
        live.sort(key=lambda e: (e[0], e[1]))
        return [e[3] for e in live]  # type: ignore[misc]


class WaitList:
    """beanstalkd's ``Ms`` set of waiting clients: swap-remove, and ``take`` rotates."""

    __slots__ = ("items", "last")

    def __init__(self) -> None:
        """No waiter."""
        self.items: list[Client] = []
        self.last = 0

    def remove(self, client: Client) -> None:
        """Swap-remove ``client`` (the last one takes its place)."""
        items = self.items
        for i, item in enumerate(items):
            if item is client:
                items[i] = items[-1]
                items.pop()
                return

    def take(self) -> Client:
        """Remove and return the next waiter in beanstalkd's ms_take rotation."""
        items = self.items
        self.last %= len(items)
        client = items[self.last]
        items[self.last] = items[-1]
        items.pop()
        self.last += 1
        return client


class Tube:
    """A named queue: ready and delayed heaps, a buried FIFO, and its counters."""

    __slots__ = (
        "buried",
        "delayed",
        "deletes",
        "name",
        "pause",
        "pause_count",
        "ready",
        "refs",
        "reserved",
        "total_jobs",
        "unpause_at",
        "urgent",
        "using",
        "waiting",
        "watching",
    )

    def __init__(self, name: str) -> None:
        """An empty tube; it lives while clients use or watch it or jobs are in it."""
        self.name = name
        self.refs = 0
        self.ready = JobHeap()
        self.delayed = JobHeap()
        self.buried: dict[int, Job] = {}
        self.waiting = WaitList()
        self.using = self.watching = self.urgent = self.reserved = 0
        self.total_jobs = self.deletes = self.pause_count = 0
        self.pause = self.unpause_at = 0


class Client:
    """The server-side state of one connection."""

    __slots__ = (
        "closed",
        "id",
        "outbox",
        "pending_timeout",
        "producer",
        "reserved",
        "soonest",
        "tick_seq",
        "use",
        "waiting",
        "watch",
        "worker",
    )

    def __init__(self, client_id: int, tube: Tube) -> None:
        """A client using and watching ``tube``."""
        self.id = client_id
        self.use = tube
        self.watch: list[Tube] = [tube]
        self.reserved: dict[int, Job] = {}
        self.soonest: Job | None = None
        self.waiting = False
        self.pending_timeout = -1
        self.tick_seq: int | None = None
        self.producer = self.worker = self.closed = False
        self.outbox = bytearray()
