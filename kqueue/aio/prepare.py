"""A reserved window, ready to run on asyncio: bodies read, records fetched, stale ones dropped.

The decisions are the sync runner's own (:mod:`kqueue.run_rules`:
:func:`~kqueue.run_rules.why_unreadable`, :func:`~kqueue.run_rules.why_not_runnable`,
:func:`~kqueue.run_rules.attempts_for`); only the I/O is awaited: the window's counters
(``stats-job``, pipelined) and its records (one store round trip) are read at the same time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from kqueue.aio.stores import AsyncStore
from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.aio_connection import AsyncBeanstalkConnection
from kqueue.beanstalk.commands import JobCounts
from kqueue.beanstalk.wire import ReservedJob
from kqueue.errors import PayloadError
from kqueue.job import Job
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
from kqueue.stores.base import JobRecord, RecordStatus

__all__ = ["AsyncJob", "WindowPreparer"]

logger = logging.getLogger("kqueue")

_Record = JobRecord | RecordStatus


@dataclass(eq=False)
class AsyncJob(Job):
    """A job reserved by the asyncio worker: ``aio_connection`` holds it reserved (the sync
    ``connection`` is None), ``reserved_at`` is when (``loop.time()``)."""

    aio_connection: AsyncBeanstalkConnection | None = field(default=None, repr=False)
    reserved_at: float = field(default=0.0, repr=False)
    generation: int = field(default=0, repr=False)
    """The socket of ``aio_connection`` that holds the job (see its ``generation``)."""


class WindowPreparer:
    """Turns a reserved window into :class:`AsyncJob` objects (None: not to be run)."""

    def __init__(
        self,
        *,
        store: AsyncStore | None,
        codecs: CodecRegistry,
        tube_prefix: str,
        events: Middleware,
        count_attempts: bool,
    ) -> None:
        self.store = store
        self.codecs = codecs
        self.tube_prefix = tube_prefix
        self.events = events
        self.count_attempts = count_attempts

    async def prepare(
        self,
        conn: AsyncBeanstalkConnection,
        window: Sequence[ReservedJob],
        held: int,
        bond: frozenset[str] = frozenset(),
    ) -> list[AsyncJob | None]:
        """The window's jobs (reserved on ``conn``'s socket of generation ``held``: never
        ask a successor about them); unreadable ones buried, stale and duplicate ones
        deleted. ``bond``: the ids of the queue's servers answering now (a copy whose record
        names another of them is a duplicate: see :func:`~kqueue.run_rules.why_not_runnable`)."""
        reserved_at = asyncio.get_running_loop().time()
        bodies = [decode_body(reserved.body) for reserved in window]
        server_id = await conn.server_id()
        conn.check_held(held)
        records, counts = await asyncio.gather(
            self._records_of(window, bodies, server_id), self._counts_of(conn, window, held)
        )
        doubtful = doubtful_copies(window, bodies, records, server_id)
        if doubtful and self.store is not None:  # copies not named by their record
            trust_whole(records, doubtful, await self.store.get_many(doubtful))
        dropped: dict[int, DropReason] = {}
        jobs = []
        for reserved, body, count in zip(window, bodies, counts, strict=True):
            job = await self._prepare(
                conn, reserved.id, body, count, records, server_id, dropped, bond=bond
            )
            if job is not None:
                job.reserved_at, job.generation = reserved_at, held
            jobs.append(job)
        if dropped:  # their records are gone: never run them
            await conn.pipeline([cmd.delete(job_id) for job_id in dropped], held=held)
            logger.warning("%d job(s) without a live record dropped unrun", len(dropped))
        return jobs

    async def _counts_of(
        self, conn: AsyncBeanstalkConnection, window: Sequence[ReservedJob], held: int
    ) -> list[JobCounts | None]:
        if not self.count_attempts:
            return [None] * len(window)
        calls = [cmd.job_counts(reserved.id) for reserved in window]
        pending = await conn.pipeline(calls, held=held)
        return [slot.result() for slot in pending]

    async def _records_of(
        self, window: Sequence[ReservedJob], bodies: list[Body | None], server_id: str
    ) -> dict[str, _Record]:
        """As :meth:`kqueue.runner.JobRunner._records_of`: copies read checked against the
        jobs held (one round trip on Redis, whether or not the record names them yet)."""
        records: dict[str, _Record] = {}
        if self.store is None:
            return records
        copies, refs = store_reads(window, bodies, server_id)
        if copies:
            records.update(await self.store.get_checked_many(copies))
        if refs:
            records.update(await self.store.get_many(refs))
        return records

    async def _prepare(
        self,
        conn: AsyncBeanstalkConnection,
        job_id: int,
        body: Body | None,
        counts: JobCounts | None,
        records: dict[str, _Record],
        server_id: str,
        dropped: dict[int, DropReason],
        *,
        bond: frozenset[str],
    ) -> AsyncJob | None:
        has_store = self.store is not None
        why = why_unreadable(body, counts, records, self.tube_prefix, has_store=has_store)
        if why is not None or body is None:
            await self._bury_unreadable(conn, job_id, why or "unreadable")
            return None
        record, reason = live_record(job_id, body, records, server_id, bond)
        if reason is not None:
            dropped[job_id] = reason
            self.events.on_dropped(job_id, body.key, reason)
            return None
        try:
            data = self.codecs.decode(body.codec, payload_of(body, record))
        except PayloadError as exc:
            await self._bury_unreadable(conn, job_id, str(exc))
            return None
        attempts = attempts_for(body, counts, record)
        return AsyncJob(**job_args(job_id, body, data, attempts), aio_connection=conn)

    async def _bury_unreadable(self, conn: AsyncBeanstalkConnection, job_id: int, why: str) -> None:
        stats = await conn.run(cmd.stats_job(job_id), held=conn.generation) or {}
        await conn.run(cmd.bury(job_id, priority=stats.get("pri", 0)), held=conn.generation)
        self.events.on_dropped(job_id, None, "unreadable")
        log_unreadable(job_id, stats.get("tube", "?"), why)
