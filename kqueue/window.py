"""The worker's reserve window: how many ready jobs to reserve at once, and reserving them.

While jobs are ready a worker reserves several with one pipelined burst of
``reserve-with-timeout 0`` (a single round trip), so that their records can be fetched and
their deletes sent together. How many are ready comes first from ``stats-tube`` (pipelined
for every watched tube, or one server-wide ``stats`` when more than a few are watched), so a
burst asks only for jobs that are there. When none is ready the worker blocks in ``reserve``,
which returns the moment one job arrives: a lone job starts at once, never waiting for
company.

The size is also held to what the worker can finish in about ``target_seconds`` at its
measured pace, so slow handlers get small windows (down to one job) and no reserved job waits
anywhere near its TTR (the runner also hands back any job not started within half its TTR).
"""

from __future__ import annotations

from collections.abc import Callable

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline, reserve_ready
from kqueue.beanstalk.wire import ReservedJob

PER_TUBE_COUNTS = 4
"""Up to this many watched tubes, a window counts the ready jobs of each (``stats-tube``);
above, the server's count (``stats``): the cost of a window stays the same for any number
of job types."""


class ReserveWindow:
    """Sizes and fills a worker's window of reserved jobs (``max_size`` 1: one at a time)."""

    def __init__(self, max_size: int, *, target_seconds: float = 0.02) -> None:
        self.max_size = max(1, max_size)
        self.target_seconds = target_seconds
        self._seconds_per_job = 0.0

    def size(self, room: int | None = None) -> int:
        """How many jobs the next burst may take at most (``room``: at most this many)."""
        if self._seconds_per_job > 0:
            size = min(self.max_size, max(1, int(self.target_seconds / self._seconds_per_job)))
        else:
            size = 1  # no pace measured yet: a slow first job must not hoard the queue
        return size if room is None else max(1, min(size, room))

    def observe(self, jobs: int, seconds: float) -> None:
        """Record that a window of ``jobs`` jobs took ``seconds`` from reserve to last ack."""
        if jobs <= 0:
            return
        pace = seconds / jobs
        old = self._seconds_per_job
        self._seconds_per_job = pace if old == 0 else 0.7 * old + 0.3 * pace

    def reserve(
        self,
        conn: BeanstalkConnection,
        wait: float | None,
        *,
        wakeup: int | None = None,
        room: int | None = None,
        before_wait: Callable[[], None] | None = None,
    ) -> list[ReservedJob]:
        """Reserve the ready jobs (up to the window), else wait up to ``wait`` for one.

        ``wait`` 0 never blocks; None waits until a job comes or ``wakeup`` is readable.
        ``before_wait`` runs before a reserve that may block.
        """
        size = self.size(room)
        if size > 1 or wait == 0:
            size = min(size, self._ready(conn))
            got = reserve_ready(conn, size) if size else []
            if got or wait == 0:
                return got
        if before_wait is not None:
            before_wait()
        one = conn.reserve(wait, wakeup=wakeup)
        return [] if one is None else [one]

    @staticmethod
    def _ready(conn: BeanstalkConnection) -> int:
        """How many jobs a burst may find ready: per watched tube while they are few, else
        the server's count over every tube (one command, however many job types: jobs of
        tubes not watched only make a burst ask for more than it gets)."""
        if conn.watch_count > PER_TUBE_COUNTS:
            return conn.stats()["current-jobs-ready"]
        pipe = Pipeline(conn)
        counts = [pipe.ready_count(tube) for tube in conn.watched]
        pipe.execute()
        return sum(count.result() for count in counts)
