"""Adding jobs from asyncio: the write-ahead protocol of :mod:`kqueue.producer`, awaited.

The same steps in the same order, from the same pure helpers (:mod:`kqueue.enqueue`): encode
every payload, write the records durably, put the references in one pipelined burst, record
the job ids; a put that fails leaves its job accepted for the sweeper (id
:data:`~kqueue.enqueue.NOT_SCHEDULED`) or, strict, removes its record and raises. Coroutines
adding at once share one connection, their bursts pipelined on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from kqueue.aio.stores import AsyncStore
from kqueue.beanstalk.aio_connection import AsyncBeanstalkConnection, Exchange
from kqueue.beanstalk.commands import Pending, put
from kqueue.config import QueueConfig
from kqueue.enqueue import (
    BATCH_SIZE,
    Encoded,
    JobOptions,
    check_sizes,
    inline_bodies,
    new_records,
    outcome_unknown,
    report_unscheduled,
    sort_outcomes,
    too_big_for_copies,
)
from kqueue.errors import BrokerError, KQueueError, StoreError, StoreOutcomeUnknownError
from kqueue.health import BrokerHealth
from kqueue.middleware.base import Middleware
from kqueue.serialization import record_body
from kqueue.stores.base import JobRecord, RefSwap

__all__ = ["AsyncProducer", "new_async_connection"]

logger = logging.getLogger("kqueue")


def new_async_connection(config: QueueConfig) -> AsyncBeanstalkConnection:
    """A new (not yet connected) asyncio beanstalkd connection with these settings."""
    host, port = config.addresses[0]
    return AsyncBeanstalkConnection(
        host,
        port,
        connect_timeout=config.connect_timeout,
        command_timeout=config.command_timeout,
        socket_factory=config.connect,
    )


class AsyncProducer:
    """add_job and add_jobs for asyncio, on a beanstalkd connection of their own."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        store: AsyncStore | None,
        events: Middleware,
        health: BrokerHealth,
    ) -> None:
        self.config = config
        self.store = store
        self.events = events
        self.health = health
        self.conn = new_async_connection(config)

    async def add(self, options: JobOptions, encoded: Sequence[Encoded]) -> list[int]:
        """Add encoded payloads in batches of :data:`BATCH_SIZE`; the job ids in order."""
        if self.store is None:
            return await self._add_inline(options, encoded)
        ids: list[int] = []
        for start in range(0, len(encoded), BATCH_SIZE):
            ids += await self._add_stored(self.store, options, encoded[start : start + BATCH_SIZE])
        return ids

    async def _add_inline(self, options: JobOptions, encoded: Sequence[Encoded]) -> list[int]:
        bodies = inline_bodies(options, encoded)
        if self.health.down is not None:
            raise self.health.down  # nothing holds an inline job but beanstalkd
        try:
            check_sizes(bodies, (await self.conn.server_stats()).get("max-job-size"))
        except BrokerError as exc:
            self.health.failed(exc)
            raise
        ids: list[int] = []
        for start in range(0, len(bodies), BATCH_SIZE):
            sent = await self._put_burst(options, bodies[start : start + BATCH_SIZE])
            if sent.error is not None:
                self.health.failed(sent.error)
                raise sent.error
            ids += [slot.result() for slot in sent.pending]
        self.events.after_enqueue(options.job_type, len(ids), 0)
        return ids

    async def _add_stored(
        self, store: AsyncStore, options: JobOptions, encoded: Sequence[Encoded]
    ) -> list[int]:
        """Records in one round trip, references in one burst, job ids in one swap."""
        records = new_records(options, encoded)
        try:
            await store.put_many(records)  # durable before anything reaches beanstalkd
        except StoreOutcomeUnknownError as exc:
            raise outcome_unknown(exc, records) from exc
        if self.health.down is not None:  # one timeout per outage, not one per add
            return await self._settle(store, options, records, [], "", self.health.down)
        copy_max = self.config.inline_copy_max
        sent = await self._put_burst(options, [record_body(r, copy_max=copy_max) for r in records])
        pending, failure = sent.pending, sent.error
        too_big = [] if failure else too_big_for_copies(records, pending, copy_max)
        if too_big:  # over the max job size with their copies: again as plain references
            again = await self._put_burst(options, [record_body(records[i]) for i in too_big])
            for index, slot in zip(too_big, again.pending, strict=True):
                pending[index] = slot
            failure = again.error
        if failure is not None:
            self.health.failed(failure)
        server_id = "" if failure else sent.server_id
        return await self._settle(store, options, records, pending, server_id, failure)

    async def _put_burst(self, options: JobOptions, bodies: Sequence[bytes]) -> Exchange:
        calls = [
            put(body, priority=options.priority, delay=options.delay, ttr=options.ttr)
            for body in bodies
        ]
        return await self.conn.exchange(calls, tube=options.tube)

    async def _settle(
        self,
        store: AsyncStore,
        options: JobOptions,
        records: list[JobRecord],
        pending: list[Pending[int]],
        server_id: str,
        failure: KQueueError | None,
    ) -> list[int]:
        """Record the ids of the jobs beanstalkd took; leave (or, strict, drop) the rest."""
        ids, swaps, failed, failure = sort_outcomes(records, pending, server_id, failure)
        await self._save_references(store, swaps)
        if failed and failure is not None:
            if self.config.strict:
                await store.delete_many(failed)
                self.events.after_enqueue(options.job_type, len(records) - len(failed), 0)
                raise failure
            report_unscheduled(options, failed, failure)
        self.events.after_enqueue(options.job_type, len(records), len(failed))
        return ids

    async def _save_references(self, store: AsyncStore, swaps: list[RefSwap]) -> None:
        if not swaps:
            return
        try:
            await store.swap_references(swaps, now=time.time())
        except StoreError as exc:
            # The jobs are in beanstalkd and will run (see Producer._save_references).
            logger.warning("%d job(s) put, references not saved: %s", len(swaps), exc)
