"""A reserved window, ready to run: bodies read, records fetched, stale ones dropped.

The sync twin of :mod:`kqueue.aio.prepare`: the decisions are :mod:`kqueue.run_rules`'
(shared with it); what is here is the I/O of the sync worker. The window's records come
from the store in one round trip, while each job's beanstalkd counters come in one burst on
an inspector connection of their own; unreadable bodies are buried, stale and duplicate
references deleted, and with lanes the jobs not to run here handed back or held.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.commands import JobCounts
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline, delete_jobs
from kqueue.beanstalk.wire import ReservedJob
from kqueue.errors import KQueueError, PayloadError, StoreError
from kqueue.job import Job
from kqueue.lane_gate import LaneGate
from kqueue.middleware.base import DropReason, Middleware
from kqueue.run_rules import (
    attempts_for,
    doubtful_copies,
    job_args,
    live_record,
    log_unreadable,
    payload_of,
    store_reads,
    trust_whole,
    why_unreadable,
)
from kqueue.serialization import Body, CodecRegistry, decode_body
from kqueue.stores.base import JobRecord, RecordStatus, Store, read_checked

__all__ = ["WindowPreparer"]

logger = logging.getLogger("kqueue")

_Record = JobRecord | RecordStatus


class _Reserved(NamedTuple):
    """A reserved job with its parsed body (None: unreadable) and its broker counters."""

    job: ReservedJob
    body: Body | None
    counts: JobCounts | None


class WindowPreparer:
    """Turns a reserved window into :class:`~kqueue.job.Job` objects (None: not to be run),
    for :class:`~kqueue.runner.JobRunner`."""

    def __init__(
        self,
        *,
        store: Store | None,
        codecs: CodecRegistry,
        handlers: Mapping[str, object],
        tube_prefix: str,
        events: Middleware,
        inspector: BeanstalkConnection | None = None,
        lanes: LaneGate | None = None,
    ) -> None:
        self.store = store
        self.codecs = codecs
        self.handlers = handlers
        self.tube_prefix = tube_prefix
        self.events = events
        self.inspector = inspector
        self.lanes = lanes
        """With lanes: decides what to do with a job not to be run here."""
        self.only: frozenset[str] | None = None
        """The job types this run is limited to (None: every handler's)."""
        self.release_at_start: dict[str, str] = {}
        """Record key -> the unique key its job frees when it starts, for this window."""
        self._inspectors: dict[str, BeanstalkConnection] = {}
        if inspector is not None:
            self._inspectors[inspector.address] = inspector

    def close(self) -> None:
        """Close the inspector connections."""
        for inspector in self._inspectors.values():
            inspector.close()

    def prepare(
        self,
        conn: BeanstalkConnection,
        window: Sequence[ReservedJob],
        bond: frozenset[str] = frozenset(),
    ) -> list[Job | None]:
        """The window's jobs (None: not to run here); a store that fails: window released,
        error raised. ``bond``: see :func:`~kqueue.run_rules.why_not_runnable`."""
        bodies = [decode_body(reserved.body) for reserved in window]
        server_id = conn.server_id()
        inspector = self._inspector_for(conn, server_id)
        # Each job's beanstalkd counters (earlier attempts that never finished count against
        # its budget) come in one burst on the inspector's connection, read while the store
        # read runs, and never holding up the deletes that go out on the worker's.
        counts: list[JobCounts | None]
        try:
            if inspector is None:  # not counted: the round trip saved, poison pills not caught
                records, counts = self._records_of(window, bodies, server_id), [None] * len(window)
            else:
                frames = b"".join(cmd.job_counts(reserved.id).frame for reserved in window)
                with inspector.overlapped(frames, len(window)) as collect:
                    records = self._records_of(window, bodies, server_id)
                    counts = [inspector.convert(cmd.JOB_COUNTS, reply) for reply in collect()]
        except StoreError:
            self._release_unread(conn, window, bodies)
            raise
        self._trust_copies(window, bodies, records, server_id)
        dropped: dict[int, DropReason] = {}
        reserved = [_Reserved(*job) for job in zip(window, bodies, counts, strict=True)]
        jobs = self._prepare_all(conn, reserved, records, server_id, bond, dropped)
        delete_jobs(conn, list(dropped))  # their records are gone: never run them
        stale = sum(reason == "stale" for reason in dropped.values())
        if stale:
            logger.warning(
                "%d job(s) in beanstalkd had no record and were dropped unrun: finished or "
                "purged already, or lost by the store (a Redis without appendonly forgets "
                "everything on restart: see docs/reliability.md)",
                stale,
            )
        return jobs

    def _prepare_all(
        self,
        conn: BeanstalkConnection,
        window: list[_Reserved],
        records: dict[str, _Record],
        server_id: str,
        bond: frozenset[str],
        dropped: dict[int, DropReason],
    ) -> list[Job | None]:
        """:meth:`_prepare` for each job of a window; with lanes, the jobs to hand back go
        in one burst at the end."""
        try:
            return [self._prepare(conn, job, records, server_id, bond, dropped) for job in window]
        finally:
            if self.lanes is not None:
                self.lanes.flush(conn)

    def _inspector_for(
        self, conn: BeanstalkConnection, server_id: str
    ) -> BeanstalkConnection | None:
        """The connection for the counters (None: they are not read): the inspector of the
        server that holds the window (one per server address; after a broker restart it is
        opened again)."""
        if self.inspector is None:
            return None
        inspector = self._inspectors.get(conn.address)
        if inspector is None:
            inspector = self._inspectors[conn.address] = BeanstalkConnection(
                conn.host,
                conn.port,
                connect_timeout=conn.connect_timeout,
                command_timeout=conn.command_timeout,
                socket_factory=conn.socket_factory,
            )
        if inspector.connected and inspector.server_id() != server_id:
            inspector.close()  # another server process: its job ids are not these jobs'
        return inspector

    def _records_of(
        self, window: Sequence[ReservedJob], bodies: list[Body | None], server_id: str
    ) -> dict[str, _Record]:
        """One round trip for the window: payloads where only the store has them, else just
        the statuses (the record must still exist, and its attempts count), checked against
        the jobs held (:func:`~kqueue.stores.base.read_checked`): the whole record of a copy
        its record does not vouch for comes in the same reply where the store can (the
        producer's reference swap is often still on its way when a lone job's worker reads)."""
        records: dict[str, _Record] = {}
        if self.store is None:
            return records
        copies, refs = store_reads(window, bodies, server_id)
        if copies:
            records.update(read_checked(self.store, copies))
        if refs:
            records.update(self.store.get_many(refs))
        return records

    def _trust_copies(
        self,
        window: Sequence[ReservedJob],
        bodies: list[Body | None],
        records: dict[str, _Record],
        server_id: str,
    ) -> None:
        """Read whole the records of copies their record does not name (see
        :func:`doubtful_copies`; one more store round trip, for those jobs only)."""
        doubtful = doubtful_copies(window, bodies, records, server_id)
        if doubtful and self.store is not None:
            trust_whole(records, doubtful, self.store.get_many(doubtful))

    def _prepare(
        self,
        conn: BeanstalkConnection,
        reserved: _Reserved,
        records: dict[str, _Record],
        server_id: str,
        bond: frozenset[str],
        dropped: dict[int, DropReason],
    ) -> Job | None:
        job_id, body, counts = reserved.job.id, reserved.body, reserved.counts
        why = why_unreadable(
            body, counts, records, self.tube_prefix, has_store=self.store is not None,
            lanes=self.lanes,
        )  # fmt: skip
        if why is not None:
            self._bury_unreadable(conn, job_id, why)
            return None
        assert body is not None
        record, reason = live_record(job_id, body, records, server_id, bond)
        if reason is not None:
            dropped[job_id] = reason
            self.events.on_dropped(job_id, body.key, reason)
            return None
        if self.lanes is not None and self._diverted(conn, reserved, record):
            return None
        attempts = attempts_for(body, counts, record)
        if isinstance(record, JobRecord) and record.unique_until_start is not None:
            self.release_at_start[record.key] = record.unique_until_start
        try:
            data = self.codecs.decode(body.codec, payload_of(body, record))
        except PayloadError as exc:
            self._bury_unreadable(conn, job_id, str(exc))
            return None
        return Job(**job_args(job_id, body, data, attempts), connection=conn)

    def _diverted(
        self, conn: BeanstalkConnection, reserved: _Reserved, record: _Record | None
    ) -> bool:
        """With lanes: True when the job was handed back or held instead of run here."""
        assert self.lanes is not None and reserved.body is not None
        body = reserved.body
        self.lanes.check_tube(reserved.counts, body)
        runnable = body.job_type in self.handlers and (
            self.only is None or body.job_type in self.only
        )
        return self.lanes.diverts(
            conn, reserved.job, body, reserved.counts, record, runnable=runnable
        )

    def _bury_unreadable(self, conn: BeanstalkConnection, job_id: int, why: str) -> None:
        stats = conn.stats_job(job_id) or {}
        conn.bury(job_id, priority=stats.get("pri", 0))
        self.events.on_dropped(job_id, None, "unreadable")
        log_unreadable(job_id, stats.get("tube", "?"), why)

    def _release_unread(
        self, conn: BeanstalkConnection, window: Sequence[ReservedJob], bodies: list[Body | None]
    ) -> None:
        """Release a window whose records the store could not give (an outage, a failover):
        released, the reserves are no attempts that never finished, so a store outage does
        not use up the jobs' retry budgets. A job whose body did not parse, or a release that
        fails, is left to the connection's close (which counts it, as before)."""
        pipe = Pipeline(conn)
        for reserved, body in zip(window, bodies, strict=True):
            if body is not None:
                pipe.release(reserved.id, priority=body.priority, delay=0)
        try:
            pipe.execute()
        except KQueueError:
            logger.debug("could not release the window after a store failure", exc_info=True)
