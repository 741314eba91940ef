"""Adding jobs from asyncio: the write-ahead protocol of :mod:`kqueue.producer`, awaited.

The same steps in the same order, from the same pure helpers (:mod:`kqueue.enqueue`): encode
every payload, write the records durably, put the references in one pipelined burst, record
the job ids; a put that fails leaves its job accepted for the sweeper (id
:data:`~kqueue.enqueue.NOT_SCHEDULED`) or, strict, removes its record and raises. Coroutines
adding at once share one connection per server, their bursts pipelined on it.

Of a queue over several servers, as the sync producer (see :mod:`kqueue.servers`): each batch
goes to the next server in turn (round robin), a server that fails is marked down and probed
in the background, and the jobs of its turn go to the next server in the same call; while it
is down, adds skip it at no cost (no connect timeout per call).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence

from kqueue.aio.stores import AsyncStore
from kqueue.beanstalk.aio_connection import AsyncBeanstalkConnection, Exchange
from kqueue.beanstalk.commands import Pending, put, settle_puts
from kqueue.config import QueueConfig
from kqueue.enqueue import (
    BATCH_SIZE,
    NOT_SCHEDULED,
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

__all__ = ["AsyncProducer", "AsyncServer", "new_async_connection"]

logger = logging.getLogger("kqueue")


def new_async_connection(
    config: QueueConfig, address: tuple[str, int] | None = None
) -> AsyncBeanstalkConnection:
    """A new (not yet connected) asyncio beanstalkd connection with these settings, to the
    server at ``address`` (None: the first configured)."""
    host, port = config.addresses[0] if address is None else address
    return AsyncBeanstalkConnection(
        host,
        port,
        connect_timeout=config.connect_timeout,
        command_timeout=config.command_timeout,
        socket_factory=config.connect,
    )


class AsyncServer:
    """One beanstalkd server of an asyncio producer: its connection and its health."""

    def __init__(
        self, config: QueueConfig, address: tuple[str, int], health: BrokerHealth | None = None
    ) -> None:
        self.conn = new_async_connection(config, address)
        self.health = BrokerHealth(config, address=address) if health is None else health
        self.address = self.health.address

    def __repr__(self) -> str:
        return f"<AsyncServer {self.address} {'up' if self.health.down is None else 'down'}>"


class AsyncProducer:
    """add_job and add_jobs for asyncio, on beanstalkd connections of their own (one per
    server)."""

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
        """The first server's health (the only one's, when the queue is not bonded)."""
        first, *others = config.addresses
        self.servers = [AsyncServer(config, first, health)]
        self.servers += [AsyncServer(config, address) for address in others]
        self.conn = self.servers[0].conn
        """The first server's connection (the only one's, when the queue is not bonded)."""
        self._turn = itertools.count()

    def rotation(self) -> list[AsyncServer]:
        """Every server, starting with the one whose turn it is (round robin per call)."""
        servers = self.servers
        if len(servers) == 1:
            return servers
        start = next(self._turn) % len(servers)
        return servers[start:] + servers[:start]

    async def connect(self) -> None:
        """Connect to every server; an unreachable one is marked down. Raises only when none
        can be reached (the error of the first)."""
        if len(self.servers) == 1:
            await self.conn.connect()
            return
        errors: list[BrokerError] = []
        for server in self.servers:
            try:
                await server.conn.connect()
            except BrokerError as exc:
                server.health.failed(exc)
                errors.append(exc)
        if len(errors) == len(self.servers):
            raise errors[0]

    async def aclose(self) -> None:
        """Close every connection, and stop probing the servers (but the first: its health
        is the queue's)."""
        for server in self.servers:
            await server.conn.aclose()
        for server in self.servers[1:]:
            server.health.close()

    async def add(self, options: JobOptions, encoded: Sequence[Encoded]) -> list[int]:
        """Add encoded payloads in batches of :data:`BATCH_SIZE`; the job ids in order."""
        if self.store is None:
            return await self._add_inline(options, encoded)
        ids: list[int] = []
        for start in range(0, len(encoded), BATCH_SIZE):
            ids += await self._add_stored(self.store, options, encoded[start : start + BATCH_SIZE])
        return ids

    # -- without a store -------------------------------------------------------------------

    async def _add_inline(self, options: JobOptions, encoded: Sequence[Encoded]) -> list[int]:
        bodies = inline_bodies(options, encoded)
        ids: list[int] = []
        for start in range(0, len(bodies), BATCH_SIZE):
            ids += await self._put_inline(options, bodies, start)
        self.events.after_enqueue(options.job_type, len(ids), 0)
        return ids

    async def _put_inline(self, options: JobOptions, every: list[bytes], start: int) -> list[int]:
        """One burst of inline bodies (``every[start:]``, up to a batch) on the server whose
        turn it is; the puts it did not take go to the next server up. Raises when no server
        takes them (nothing holds an inline job but beanstalkd)."""
        bodies = every[start : start + BATCH_SIZE]
        ids = [NOT_SCHEDULED] * len(bodies)
        left = list(range(len(bodies)))
        failure: KQueueError | None = None
        for server in self.rotation():
            if server.health.down is not None:
                failure = failure or server.health.down
                continue
            try:
                check_sizes(every, (await server.conn.server_stats()).get("max-job-size"))
            except BrokerError as exc:
                server.health.failed(exc)
                failure = exc
                continue
            sent = await _put_burst(server.conn, options, [bodies[i] for i in left])
            if sent.error is not None:
                server.health.failed(sent.error)
                failure = sent.error
            left, error = settle_puts(left, sent.pending, ids)
            failure = failure or error
            if not left:
                return ids
        raise failure or BrokerError("no beanstalkd server took the jobs")

    # -- with a store ----------------------------------------------------------------------

    async def _add_stored(
        self, store: AsyncStore, options: JobOptions, encoded: Sequence[Encoded]
    ) -> list[int]:
        """Records in one round trip, references in one burst (on the server whose turn it
        is, what it did not take on the next), job ids in one swap."""
        records = new_records(options, encoded)
        try:
            await store.put_many(records)  # durable before anything reaches beanstalkd
        except StoreOutcomeUnknownError as exc:
            raise outcome_unknown(exc, records) from exc
        pending: list[Pending[int] | None] = [None] * len(records)
        server_ids = [""] * len(records)
        left = list(range(len(records)))
        failure: KQueueError | None = None
        for server in self.rotation():
            if server.health.down is not None:  # one timeout per outage, not one per add
                failure = failure or server.health.down
                continue
            got, server_id, error = await self._put_on(server, options, [records[i] for i in left])
            still = []
            for index, slot in zip(left, got, strict=True):
                pending[index], server_ids[index] = slot, server_id
                if not (slot.done and slot.error is None):
                    still.append(index)
            left, failure = still, error or failure
            if not left:
                break
        return await self._settle(store, options, records, pending, server_ids, failure)

    async def _put_on(
        self, server: AsyncServer, options: JobOptions, records: list[JobRecord]
    ) -> tuple[list[Pending[int]], str, BrokerError | None]:
        """The puts of ``records`` on one server: each one's outcome, the server's id (""
        when the burst broke) and the error that broke it (the server is then marked down)."""
        copy_max = self.config.inline_copy_max
        bodies = [record_body(r, copy_max=copy_max) for r in records]
        sent = await _put_burst(server.conn, options, bodies)
        pending, failure = sent.pending, sent.error
        too_big = [] if failure else too_big_for_copies(records, pending, copy_max)
        if too_big:  # over the max job size with their copies: again as plain references
            again = await _put_burst(
                server.conn, options, [record_body(records[i]) for i in too_big]
            )
            for index, slot in zip(too_big, again.pending, strict=True):
                pending[index] = slot
            failure = again.error
        if failure is not None:
            server.health.failed(failure)
        return pending, "" if failure else sent.server_id, failure

    async def _settle(
        self,
        store: AsyncStore,
        options: JobOptions,
        records: list[JobRecord],
        pending: Sequence[Pending[int] | None],
        server_ids: Sequence[str],
        failure: KQueueError | None,
    ) -> list[int]:
        """Record the ids of the jobs beanstalkd took (each on the server ``server_ids``
        names); leave (or, strict, drop) the rest."""
        ids, swaps, failed, failure = sort_outcomes(records, pending, server_ids, failure)
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


async def _put_burst(
    conn: AsyncBeanstalkConnection, options: JobOptions, bodies: Sequence[bytes]
) -> Exchange:
    calls = [
        put(body, priority=options.priority, delay=options.delay, ttr=options.ttr)
        for body in bodies
    ]
    return await conn.exchange(calls, tube=options.tube)
