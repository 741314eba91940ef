"""What a worker with lanes does with a reserved job it must not run (see :mod:`kqueue.lanes`).

A lane holds the jobs of several types, so a worker may reserve a job of a type it has no
handler for, or of a type suspended since it was put. The first is handed back with a short
delay (:data:`HAND_BACK_DELAY`): a release, which a stored job's retry budget never counts
(attempts are counted on its record), so that the lane's other jobs get their turn; the
second is moved into its type's own tube, which :meth:`~kqueue.admin.Admin.suspend` paused,
until :func:`release_held` moves it back on resume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kqueue.beanstalk.commands import JobCounts, Pending
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline
from kqueue.beanstalk.wire import ReservedJob
from kqueue.config import QueueConfig
from kqueue.errors import KQueueError
from kqueue.job import tube_for
from kqueue.lanes import is_lane_tube, routed_tube
from kqueue.serialization import Body, decode_body, encode_body
from kqueue.stores.base import BrokerRef, JobRecord, RecordStatus, Store

__all__ = [
    "HAND_BACK_DELAY",
    "HAND_BACK_MAX",
    "SUSPENDED_REFRESH",
    "LaneGate",
    "hand_back",
    "hand_back_delay",
    "hold",
    "lane_gate",
    "release_held",
]

logger = logging.getLogger("kqueue")

HAND_BACK_DELAY = 1
"""Seconds a job handed back by a worker without its handler waits before it is ready again
(the first time; doubled with each release of the job, up to :data:`HAND_BACK_MAX`)."""

HAND_BACK_MAX = 32
"""The longest hand-back delay: a backlog of a type no worker runs costs the lane's workers
a reserve and a release per job about every 32 s, not every second."""

SUSPENDED_REFRESH = 1.0
"""A worker reads the store's suspended job types at most this often (seconds)."""


def lane_gate(config: QueueConfig, store: Store | None) -> LaneGate | None:
    """The gate of a worker with these settings (None without lanes)."""
    return LaneGate(config, store) if config.lanes else None


class LaneGate:
    """Decides, per reserved job of a lane, whether this worker runs it, and if not, where
    it goes (handed back, or held in its suspended type's tube)."""

    def __init__(
        self,
        config: QueueConfig,
        store: Store | None,
        *,
        refresh: float = SUSPENDED_REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = config.tube_prefix
        self.lanes = config.lanes
        self.store = store
        self.refresh = refresh
        self._clock = clock
        self._suspended: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._warned: set[str] = set()
        self._looked = False
        self._back: list[tuple[ReservedJob, Body, JobCounts | None]] = []  # to hand back
        self._lanes: dict[str, str] = {}  # job type -> its lane's tube, as this worker sees it

    def suspended(self) -> frozenset[str]:
        """The job types suspended in the store, read again once :attr:`refresh` passed (a
        failed read keeps the last set: it is retried at the next job)."""
        now = self._clock()
        if self.store is None or (self._read_at is not None and now - self._read_at < self.refresh):
            return self._suspended
        try:
            self._suspended = frozenset(self.store.suspended())
            self._read_at = now
        except KQueueError as exc:
            logger.warning("lanes: cannot read the suspended job types: %s", exc)
        return self._suspended

    def check_tube(self, counts: JobCounts | None, body: Body) -> None:
        """Log (once per type) a job found in another lane than this worker's ``lanes`` puts
        its type in: a producer with other lane settings (it still runs here)."""
        if counts is None:
            return
        expected = self._lanes.get(body.job_type)
        if expected is None:
            expected = self._lanes[body.job_type] = routed_tube(
                body.job_type, self.prefix, self.lanes
            )
        if counts.tube != expected and body.job_type not in self._warned:
            self._warned.add(body.job_type)
            logger.error(
                "lanes: a job of type %s came from tube %s, but lanes=%d puts that type in %s: "
                "producers and workers disagree on lanes (jobs may wait in tubes no worker "
                "watches; see docs/guide.md, Lanes)",
                body.job_type, counts.tube, self.lanes, expected,
            )  # fmt: skip

    def look_for_strays(self, conn: BeanstalkConnection, job_types: list[str]) -> None:
        """Once per worker: log the handled types whose own tube holds ready jobs while not
        paused (put there by a producer without lanes: no worker with lanes reserves them).
        One ``list-tubes``, and one ``stats-tube`` per such tube."""
        if self._looked:
            return
        self._looked = True
        tubes = set(conn.list_tubes())
        for job_type in job_types:
            own = self.prefix + job_type
            stats = conn.stats_tube(own) if own in tubes else None
            if stats and stats.get("current-jobs-ready", 0) and not stats.get("pause", 0):
                logger.error(
                    "lanes: %d job(s) of type %s wait in tube %s, which no worker with lanes "
                    "watches: a producer without lanes=%d? (see docs/guide.md, Lanes)",
                    stats.get("current-jobs-ready", 0), job_type, own, self.lanes,
                )  # fmt: skip

    def accepts_tube(self, tube: str) -> bool:
        """True when a job reserved from ``tube`` may be a lane's (of any number of lanes)."""
        return is_lane_tube(tube, self.prefix)

    def diverts(
        self,
        conn: BeanstalkConnection,
        reserved: ReservedJob,
        body: Body,
        counts: JobCounts | None,
        record: JobRecord | RecordStatus | None,
        *,
        runnable: bool,
    ) -> bool:
        """True when the job was held or handed back here, so it must not run."""
        if record is not None and body.job_type in self.suspended():
            hold(conn, self.store, reserved.id, body, record.ref, self.prefix)
            return True
        if not runnable:
            self._back.append((reserved, body, counts))
            return True
        return False

    def flush(self, conn: BeanstalkConnection) -> None:
        """Hand back the jobs :meth:`diverts` set aside for it, in one burst."""
        back, self._back = self._back, []
        if back:
            hand_back(conn, back)


def hand_back(
    conn: BeanstalkConnection, jobs: list[tuple[ReservedJob, Body, JobCounts | None]]
) -> None:
    """Give back jobs this worker has no handler for (reserved on ``conn``), ready again
    after :func:`hand_back_delay`, without counting an attempt; one pipelined burst.

    A stored job is released (its attempts are counted on its record). A job without a store
    counts its failed attempts by beanstalkd's releases, so one never released or lost
    before goes back as a new copy (put, then the original deleted once the put succeeded);
    one with a history (or whose counters were not read: ``count_lost_attempts=False``) is
    released, which counts.
    """
    pipe = Pipeline(conn)
    copies: list[tuple[int, Pending[int]]] = []
    for reserved, body, counts in jobs:
        if body.stored or not _fresh(counts):
            pipe.release(reserved.id, priority=body.priority, delay=hand_back_delay(counts))
            continue
        assert counts is not None
        pipe.use(counts.tube)
        put = pipe.put(reserved.body, priority=body.priority, delay=HAND_BACK_DELAY, ttr=body.ttr)
        copies.append((reserved.id, put))
    pipe.execute()
    for job_id, put in copies:
        if put.error is None:  # a refused copy leaves the original reserved here
            pipe.delete(job_id)
    pipe.execute()


def _fresh(counts: JobCounts | None) -> bool:
    """True when beanstalkd's counters show a job reserved once, never released, buried or
    lost before (None: not read, so not known to be)."""
    return counts is not None and (counts.reserves, counts.releases, counts.buries) == (1, 0, 0)


def hand_back_delay(counts: JobCounts | None) -> int:
    """:data:`HAND_BACK_DELAY` doubled for each earlier release of the job (its counters
    read), at most :data:`HAND_BACK_MAX`."""
    releases = 0 if counts is None else min(counts.releases, 5)
    return min(HAND_BACK_MAX, HAND_BACK_DELAY << releases)


def hold(
    conn: BeanstalkConnection,
    store: Store | None,
    job_id: int,
    body: Body,
    ref: BrokerRef | None,
    prefix: str,
) -> None:
    """Move a stored job into its type's own (paused) tube: put there, the record's
    reference swapped to the copy, the lane's job deleted. A record changed meanwhile keeps
    the lane's job (handed back) and loses the copy."""
    assert store is not None
    moved = _put(conn, tube_for(body.job_type, prefix), body)
    server_id = conn.server_id()
    new = BrokerRef(server_id, moved)
    if store.swap_references([(body.key, ref, new)], now=time.time()):
        conn.delete(job_id)
        logger.debug("job %s of suspended type %s held as %s", job_id, body.job_type, moved)
    else:
        conn.delete(moved)
        conn.release(job_id, priority=body.priority, delay=HAND_BACK_DELAY)


def _put(conn: BeanstalkConnection, tube: str, body: Body) -> int:
    """Put a plain reference to the body's record into ``tube`` (one burst); its new id."""
    raw = encode_body(
        "r",
        key=body.key,
        codec=body.codec,
        priority=body.priority,
        ttr=body.ttr,
        job_type=body.job_type,
    )
    pipe = Pipeline(conn)
    pipe.use(tube)
    put = pipe.put(raw, priority=body.priority, delay=0, ttr=body.ttr)
    pipe.execute()
    return put.result()


def release_held(
    conn: BeanstalkConnection, store: Store, job_type: str, *, prefix: str, lanes: int
) -> int:
    """Move the jobs held in a resumed type's own tube back to its lane; how many moved.

    Each is peeked (never reserved: no attempt is counted), put into the lane, its record's
    reference swapped, then deleted; one whose record is gone is deleted unrun.
    """
    held, lane = tube_for(job_type, prefix), routed_tube(job_type, prefix, lanes)
    conn.use(held)
    stats = conn.stats_tube(held) or {}
    moved = 0
    for _ in range(stats.get("current-jobs-ready", 0)):
        found = conn.peek_ready()
        body = None if found is None else decode_body(found.body)
        if found is None or body is None or not body.stored:
            break  # only a worker's moves land here: anything else stays for a look
        new = _put(conn, lane, body)
        server_id = conn.server_id()
        if store.swap_references(
            [(body.key, BrokerRef(server_id, found.id), BrokerRef(server_id, new))],
            now=time.time(),
        ):
            moved += 1
        else:
            conn.delete(new)  # the record is gone or names another job: this copy is stale
        conn.delete(found.id)
        conn.use(held)
    return moved
