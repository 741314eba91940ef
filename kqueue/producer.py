"""Adding jobs: the write-ahead protocol, written once for one job and for many.

Every add goes the same way, whether ``add_job`` (a batch of one) or ``add_jobs``: every
payload is validated and encoded first (one bad payload and nothing at all is written), then
the records are written durably in one ``put_many``, then the references go to beanstalkd in
one pipelined burst, then the job ids are recorded with one ``swap_references``. Accepted
means durable: the store write comes before any put, and a job whose put fails stays
accepted for the recovery sweeper (its id is :data:`NOT_SCHEDULED`) or, in strict mode, has
its record removed and the error raised. Without a store the payloads travel inline in the
bodies, every body size-checked before the first put. The pure steps live in
:mod:`kqueue.enqueue`, shared with the asyncio producer (:mod:`kqueue.aio.producer`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from kqueue.beanstalk.pipeline import Pending, Pipeline
from kqueue.config import QueueConfig
from kqueue.enqueue import (
    BATCH_SIZE,
    NOT_SCHEDULED,
    Encoded,
    JobOptions,
    check_sizes,
    encode_payloads,
    inline_bodies,
    job_options,
    new_records,
    outcome_unknown,
    report_unscheduled,
    sort_outcomes,
    too_big_for_copies,
)
from kqueue.errors import BrokerError, KQueueError, StoreError, StoreOutcomeUnknownError
from kqueue.health import BrokerHealth
from kqueue.middleware.base import Middleware
from kqueue.serialization import CodecRegistry, record_body
from kqueue.stores.base import JobRecord, RefSwap, Store

__all__ = ["BATCH_SIZE", "NOT_SCHEDULED", "Encoded", "JobOptions", "Producer"]

logger = logging.getLogger("kqueue")


class Producer:
    """add_job and add_jobs on a beanstalkd connection of their own (thread-safe)."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        store: Store | None,
        codecs: CodecRegistry,
        events: Middleware,
    ) -> None:
        self.config = config
        self.store = store
        self.codecs = codecs
        self.events = events
        self._conn = config.new_connection()
        self._lock = threading.Lock()
        self._warned_inline = False
        self.health = BrokerHealth(config)

    def connect(self) -> None:
        """Connect now (an unreachable beanstalkd fails here, with its address)."""
        self._conn.connect()

    def close(self) -> None:
        """Close the connection (and stop probing a broker marked down)."""
        self.health.close()
        self._conn.close()

    @property
    def connected(self) -> bool:
        """True while the producer's connection is open."""
        return self._conn.connected

    def options(self, job_type: str, priority: int, delay: float, ttr: int) -> JobOptions:
        """The checked options of an add; ValidationError before anything is written."""
        return job_options(job_type, priority, delay, ttr, tube_prefix=self.config.tube_prefix)

    def add_job(self, options: JobOptions, payload: Any) -> int:
        """Add one job; its beanstalkd id (or NOT_SCHEDULED)."""
        return self.add(options, [self.codecs.encode(payload)])[0]

    def add_jobs(self, options: JobOptions, payloads: Iterable[Any]) -> list[int]:
        """Add many jobs of one type; their ids in order (see the module docstring)."""
        return self.add(options, self.encode_all(payloads))

    def encode_all(self, payloads: Iterable[Any]) -> list[Encoded]:
        """Every payload encoded, or PayloadError naming the first bad one (nothing added)."""
        return encode_payloads(self.codecs, payloads)

    def add(self, options: JobOptions, encoded: Sequence[Encoded]) -> list[int]:
        """Add encoded payloads in batches of :data:`BATCH_SIZE`; the job ids in order."""
        if self.store is None:
            return self._add_inline(options, encoded)
        ids: list[int] = []
        for start in range(0, len(encoded), BATCH_SIZE):
            ids += self._add_stored(self.store, options, encoded[start : start + BATCH_SIZE])
        return ids

    # -- without a store -------------------------------------------------------------------

    def _add_inline(self, options: JobOptions, encoded: Sequence[Encoded]) -> list[int]:
        bodies = inline_bodies(options, encoded)
        self._warn_inline()
        ids: list[int] = []
        with self._lock:
            if self.health.down is not None:
                raise self.health.down  # nothing holds an inline job but beanstalkd
            self._check_sizes(bodies)
            for start in range(0, len(bodies), BATCH_SIZE):
                pending, error = self._put_burst(options, bodies[start : start + BATCH_SIZE])
                if error is not None:
                    self.health.failed(error)
                    raise error
                ids += [slot.result() for slot in pending]
        self.events.after_enqueue(options.job_type, len(ids), 0)
        return ids

    def _check_sizes(self, bodies: list[bytes]) -> None:
        check_sizes(bodies, self._conn.server_stats().get("max-job-size"))

    def _warn_inline(self) -> None:
        if not self._warned_inline:
            self._warned_inline = True
            logger.warning(
                "no bulk store configured: jobs live only in beanstalkd at %s "
                "(no recovery if it dies)",
                self.config.address,
            )

    # -- with a store ----------------------------------------------------------------------

    def _add_stored(
        self, store: Store, options: JobOptions, encoded: Sequence[Encoded]
    ) -> list[int]:
        """Records in one round trip, references in one burst, job ids in one swap."""
        records = new_records(options, encoded)
        _write_ahead(store, records)
        copy_max = self.config.inline_copy_max
        bodies = [record_body(record, copy_max=copy_max) for record in records]
        with self._lock:
            if self.health.down is not None:  # one timeout per outage, not one per add
                return self._settle(store, options, records, [], "", self.health.down)
            pending, failure = self._put_burst(options, bodies)
            if failure is None:
                failure = self._put_plain_references(options, records, pending)
            server_id = ""
            if failure is None:
                # The id of the connection that carried the puts: read when it connected
                # (never asked of whatever answers now), so a server that died right after
                # the replies cannot lend a successor's id to jobs it never held.
                try:
                    server_id = self._conn.server_id()
                except BrokerError as exc:
                    failure = exc
            if failure is not None:
                self.health.failed(failure)
        return self._settle(store, options, records, pending, server_id, failure)

    def _put_burst(
        self, options: JobOptions, bodies: Sequence[bytes]
    ) -> tuple[list[Pending[int]], BrokerError | None]:
        """One pipelined burst: ``use`` when needed, then a put for every body.

        Each Pending says whether its put went through; the error is the connection's, when
        it broke part way (the puts it answered before keep their ids).
        """
        pipe = Pipeline(self._conn)
        if self._conn.used != options.tube:
            pipe.use(options.tube)
        pending = [
            pipe.put(body, priority=options.priority, delay=options.delay, ttr=options.ttr)
            for body in bodies
        ]
        try:
            pipe.execute()
        except BrokerError as exc:
            return pending, exc
        return pending, None

    def _put_plain_references(
        self, options: JobOptions, records: list[JobRecord], pending: list[Pending[int]]
    ) -> BrokerError | None:
        """Jobs whose inline copy is over the server's max job size go again as plain
        references (the records are durable already, so the jobs stay)."""
        copy_max = self.config.inline_copy_max
        too_big = too_big_for_copies(records, pending, copy_max)
        if not too_big:
            return None
        plain = [record_body(records[index]) for index in too_big]
        again, error = self._put_burst(options, plain)
        for index, slot in zip(too_big, again, strict=True):
            pending[index] = slot
        return error

    def _settle(
        self,
        store: Store,
        options: JobOptions,
        records: list[JobRecord],
        pending: list[Pending[int]],
        server_id: str,
        failure: KQueueError | None,
    ) -> list[int]:
        """Record the ids of the jobs beanstalkd took; leave (or, strict, drop) the rest."""
        ids, swaps, failed, failure = sort_outcomes(records, pending, server_id, failure)
        self._save_references(store, swaps)
        if failed and self.config.strict:
            store.delete_many(failed)
            self.events.after_enqueue(options.job_type, len(records) - len(failed), 0)
            assert failure is not None
            raise failure
        if failed:
            assert failure is not None
            report_unscheduled(options, failed, failure)
        self.events.after_enqueue(options.job_type, len(records), len(failed))
        return ids

    def _save_references(self, store: Store, swaps: list[RefSwap]) -> None:
        if not swaps:
            return
        try:
            store.swap_references(swaps, now=time.time())
        except StoreError as exc:
            # The jobs are in beanstalkd and will run: report them as added. Without their
            # references the sweeper may put them again after the grace period (duplicates
            # the worker drops once the record names the other copy).
            logger.warning("%d job(s) put, references not saved: %s", len(swaps), exc)


def _write_ahead(store: Store, records: list[JobRecord]) -> None:
    """The durable write; raises before anything reaches beanstalkd. A write whose reply
    never came is reported with the keys of its jobs (they may be accepted all the same)."""
    try:
        store.put_many(records)
    except StoreOutcomeUnknownError as exc:
        raise outcome_unknown(exc, records) from exc
