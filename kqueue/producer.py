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

A job may claim a unique key (``unique_key=``): the store's ``put_unique`` then writes only
the records whose key is free, in the same one round trip, and a job whose key is held gets
the id of the job holding it instead of being added (see :class:`UniqueFor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kqueue.beanstalk.commands import settle_puts
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pending, Pipeline
from kqueue.claims import is_claim
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
from kqueue.errors import (
    BrokerError,
    KQueueError,
    StoreError,
    StoreOutcomeUnknownError,
    ValidationError,
)
from kqueue.keys import new_keys
from kqueue.middleware.base import Middleware
from kqueue.serialization import CodecRegistry, record_body
from kqueue.servers import BeanstalkServer, ServerSet
from kqueue.stores.base import JobRecord, RefSwap, Store, UniqueClaim
from kqueue.unique import UniqueFor, UniqueKeys, UniqueLifetime, unique_claim, unique_keys_of

__all__ = [
    "BATCH_SIZE",
    "NOT_SCHEDULED",
    "Encoded",
    "JobOptions",
    "Producer",
]

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
        self.servers = ServerSet(config)
        """The beanstalkd servers, each with the producer's connection to it and its health."""
        self.health = self.servers.first.health
        """The first server's health (the only one's, when the queue is not bonded)."""
        self._warned_inline = False

    def connect(self) -> None:
        """Connect now (an unreachable beanstalkd fails here, with its address; of several,
        only when none can be reached)."""
        self.servers.connect()

    def close(self) -> None:
        """Close the connections (and stop probing brokers marked down)."""
        self.servers.close()

    @property
    def connected(self) -> bool:
        """True while a connection of the producer is open."""
        return self.servers.connected

    def options(self, job_type: str, priority: int, delay: float, ttr: int) -> JobOptions:
        """The checked options of an add; ValidationError before anything is written."""
        return job_options(
            job_type, priority, delay, ttr, tube_prefix=self.config.tube_prefix,
            lanes=self.config.lanes,
        )  # fmt: skip

    def add_job(
        self,
        options: JobOptions,
        payload: Any,
        *,
        unique_key: str | None = None,
        unique_for: UniqueLifetime = UniqueFor.FINISH,
    ) -> int:
        """Add one job; its beanstalkd id (or NOT_SCHEDULED).

        With a ``unique_key`` held by a waiting job (see :class:`UniqueFor`), nothing is
        added and the id is that job's (NOT_SCHEDULED while beanstalkd does not hold it).
        """
        claims = None
        if unique_key is not None:
            claims = [unique_claim(unique_key, unique_for, now=time.time())]
        return self.add(options, [self.codecs.encode(payload)], claims)[0]

    def add_jobs(
        self,
        options: JobOptions,
        payloads: Iterable[Any],
        *,
        unique_key: UniqueKeys | None = None,
        unique_for: UniqueLifetime = UniqueFor.FINISH,
    ) -> list[int]:
        """Add many jobs of one type; their ids in order (see the module docstring).

        ``unique_key``: a function of the payload, or a sequence with a key (or None) per
        payload; as in :meth:`add_job`, each job whose key is held is not added.
        """
        listed = list(payloads) if unique_key is not None else payloads
        encoded = self.encode_all(listed)
        if unique_key is None:
            return self.add(options, encoded)
        assert isinstance(listed, list)
        keys = unique_keys_of(unique_key, listed)
        now = time.time()
        claims = [None if key is None else unique_claim(key, unique_for, now=now) for key in keys]
        return self.add(options, encoded, claims)

    def encode_all(self, payloads: Iterable[Any]) -> list[Encoded]:
        """Every payload encoded, or PayloadError naming the first bad one (nothing added)."""
        return encode_payloads(self.codecs, payloads)

    def add(
        self,
        options: JobOptions,
        encoded: Sequence[Encoded],
        claims: Sequence[UniqueClaim | None] | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[int]:
        """Add encoded payloads in batches of :data:`BATCH_SIZE`; the job ids in order.

        ``claims``: the unique key each job claims (or None), see :meth:`add_job`. ``keys``
        are the record keys to give the jobs (None: fresh ones).
        """
        return [job_id for _, job_id in self.add_keyed(options, encoded, claims, keys)]

    def add_keyed(
        self,
        options: JobOptions,
        encoded: Sequence[Encoded],
        claims: Sequence[UniqueClaim | None] | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[tuple[str, int]]:
        """:meth:`add`, answering each job's record key beside its id (for a job whose
        unique key was held: the key and id of the job holding it)."""
        keys = new_keys(len(encoded)) if keys is None else keys
        if self.store is None:
            if claims is not None and any(claim is not None for claim in claims):
                raise ValidationError("unique_key needs a bulk store (nothing was added)")
            return list(zip(keys, self._add_inline(options, encoded, keys), strict=True))
        if claims is None:
            return self._add_batches(self.store, options, encoded, keys)
        added: list[tuple[str, int]] = []
        for start in range(0, len(encoded), BATCH_SIZE):
            batch = slice(start, start + BATCH_SIZE)
            records = new_records(options, encoded[batch], keys[batch], claims[batch])
            added += self._add_unique(self.store, options, records, claims[batch])
        return added

    def _add_batches(
        self, store: Store, options: JobOptions, encoded: Sequence[Encoded], keys: Sequence[str]
    ) -> list[tuple[str, int]]:
        """Batch after batch; with a store that can start a write (``put_many_started``),
        each batch's records go to the store while the batch before has its puts sent, so
        the store's work overlaps beanstalkd's. Each batch is still durable before its own
        puts (its write's reply is read first). Strict adds take no write ahead of a batch
        that may fail and raise."""
        added: list[tuple[str, int]] = []
        overlap = not self.config.strict

        def batch(start: int) -> tuple[list[JobRecord], Callable[[], None]]:
            """The records of the batch at ``start``, their write begun."""
            part = slice(start, start + BATCH_SIZE)
            records = new_records(options, encoded[part], keys[part])
            return records, _start_write(store, records)

        upcoming, written = batch(0) if encoded else ([], _written)
        for start in range(0, len(encoded), BATCH_SIZE):
            records, wait = upcoming, written
            wait()  # durable before anything reaches beanstalkd
            more = start + BATCH_SIZE < len(encoded)
            upcoming, written = batch(start + BATCH_SIZE) if more and overlap else ([], _written)
            try:
                ids = self._add_stored(store, options, records, written=True)
            except BaseException:
                if upcoming:
                    _withdraw(store, written, upcoming)
                raise
            added += zip(keys[start : start + BATCH_SIZE], ids, strict=True)
            if more and not overlap:
                upcoming, written = batch(start + BATCH_SIZE)
        return added

    # -- without a store -------------------------------------------------------------------

    def _add_inline(
        self, options: JobOptions, encoded: Sequence[Encoded], keys: Sequence[str]
    ) -> list[int]:
        bodies = inline_bodies(options, encoded, keys)
        self._warn_inline()
        ids: list[int] = []
        for start in range(0, len(bodies), BATCH_SIZE):
            ids += self._put_inline(options, bodies, start)
        self.events.after_enqueue(options.job_type, len(ids), 0)
        return ids

    def _put_inline(self, options: JobOptions, every: list[bytes], start: int) -> list[int]:
        """One burst of inline bodies (``every[start:]``, up to a batch) on the server whose
        turn it is; the puts it did not take go to the next server up. Raises when no
        server takes them (nothing holds an inline job but beanstalkd). Every body of the
        call is size-checked against a server before its first put there."""
        bodies = every[start : start + BATCH_SIZE]
        ids = [NOT_SCHEDULED] * len(bodies)
        left = list(range(len(bodies)))
        failure: KQueueError | None = None
        for server in self.servers.rotation():
            if server.health.down is not None:
                failure = failure or server.health.down
                continue
            with server.lock:
                try:
                    limit = server.conn.server_stats().get("max-job-size")
                except BrokerError as exc:
                    server.health.failed(exc)
                    failure = exc
                    continue
                check_sizes(every, limit)
                pending, error = self._put_burst(server.conn, options, [bodies[i] for i in left])
            if error is not None:
                server.health.failed(error)
                failure = error
            left, put_error = settle_puts(left, pending, ids)
            failure = failure or put_error
            if not left:
                return ids
        raise failure or BrokerError("no beanstalkd server took the jobs")

    def _warn_inline(self) -> None:
        if not self._warned_inline:
            self._warned_inline = True
            logger.warning(
                "no bulk store configured: jobs live only in beanstalkd at %s "
                "(no recovery if it dies)",
                self.config.address,
            )

    # -- with a store ----------------------------------------------------------------------

    def _add_unique(
        self,
        store: Store,
        options: JobOptions,
        records: list[JobRecord],
        claims: Sequence[UniqueClaim | None],
    ) -> list[tuple[str, int]]:
        """The store writes the jobs whose unique key is free (a key twice in the batch: the
        first); the others get the key and id of the job holding their unique key."""
        first_of: dict[str, int] = {}
        same_as: dict[int, int] = {}
        for index, claim in enumerate(claims):
            if claim is not None:
                same_as[index] = first_of.setdefault(claim.unique_key, index)
        mine = [i for i in range(len(records)) if same_as.get(i, i) == i]
        holders = _write_ahead(store, [records[i] for i in mine], [claims[i] for i in mine])
        written = [i for i, holder in zip(mine, holders, strict=True) if holder is None]
        put_ids = self._add_stored(store, options, [records[i] for i in written], written=True)
        id_of = {records[i].key: job_id for i, job_id in zip(written, put_ids, strict=True)}
        held = {holder for holder in holders if holder is not None}
        id_of.update(_ids_of_holders(store, held - id_of.keys()))
        holder_of = {i: holder for i, holder in zip(mine, holders, strict=True) if holder}
        added = []
        for index in range(len(records)):
            first = same_as.get(index, index)
            key = holder_of.get(first, records[first].key)
            added.append((key, id_of.get(key, NOT_SCHEDULED)))
        return added

    def _add_stored(
        self, store: Store, options: JobOptions, records: list[JobRecord], *, written: bool = False
    ) -> list[int]:
        """Records in one round trip (unless ``written`` already), references in one burst,
        job ids in one swap."""
        if not records:
            return []
        if not written:
            _write_ahead(store, records)
        copy_max = self.config.inline_copy_max
        bodies = [record_body(record, copy_max=copy_max) for record in records]
        pending: list[Pending[int] | None] = [None] * len(records)
        server_ids = [""] * len(records)
        left = list(range(len(records)))
        failure: KQueueError | None = None
        for server in self.servers.rotation():
            if server.health.down is not None:  # one timeout per outage, not one per add
                failure = failure or server.health.down
                continue
            sent = [records[i] for i in left]
            got, server_id, error = self._put_on(server, options, sent, [bodies[i] for i in left])
            still: list[int] = []
            for index, slot in zip(left, got, strict=True):
                pending[index], server_ids[index] = slot, server_id
                if not (slot.done and slot.error is None):
                    still.append(index)
            left, failure = still, error or failure
            if not left:
                break
        return self._settle(store, options, records, pending, server_ids, failure)

    def _put_on(
        self,
        server: BeanstalkServer,
        options: JobOptions,
        records: list[JobRecord],
        bodies: list[bytes],
    ) -> tuple[list[Pending[int]], str, BrokerError | None]:
        """The puts of ``records`` on one server: each one's outcome, the server's id (""
        if it could not be read) and the error that broke the burst (the server is then
        marked down when it is unreachable)."""
        conn = server.conn
        with server.lock:
            pending, failure = self._put_burst(conn, options, bodies)
            if failure is None:
                failure = self._put_plain_references(conn, options, records, pending)
            server_id = ""
            if failure is None:
                # The id of the connection that carried the puts: read when it connected
                # (never asked of whatever answers now), so a server that died right after
                # the replies cannot lend a successor's id to jobs it never held.
                try:
                    server_id = conn.server_id()
                except BrokerError as exc:
                    failure = exc
            if failure is not None:
                server.health.failed(failure)
        return pending, server_id, failure

    def _put_burst(
        self, conn: BeanstalkConnection, options: JobOptions, bodies: Sequence[bytes]
    ) -> tuple[list[Pending[int]], BrokerError | None]:
        """One pipelined burst: ``use`` when needed, then a put for every body.

        Each Pending says whether its put went through; the error is the connection's, when
        it broke part way (the puts it answered before keep their ids).
        """
        pipe = Pipeline(conn)
        if conn.used != options.tube:
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
        self,
        conn: BeanstalkConnection,
        options: JobOptions,
        records: list[JobRecord],
        pending: list[Pending[int]],
    ) -> BrokerError | None:
        """Jobs whose inline copy is over the server's max job size go again as plain
        references (the records are durable already, so the jobs stay)."""
        copy_max = self.config.inline_copy_max
        too_big = too_big_for_copies(records, pending, copy_max)
        if not too_big:
            return None
        plain = [record_body(records[index]) for index in too_big]
        again, error = self._put_burst(conn, options, plain)
        for index, slot in zip(too_big, again, strict=True):
            pending[index] = slot
        return error

    def _settle(
        self,
        store: Store,
        options: JobOptions,
        records: list[JobRecord],
        pending: Sequence[Pending[int] | None],
        server_ids: Sequence[str],
        failure: KQueueError | None,
    ) -> list[int]:
        """Record the ids of the jobs beanstalkd took (each on the server ``server_ids``
        names); leave (or, strict, drop) the rest."""
        ids, swaps, failed, failure = sort_outcomes(records, pending, server_ids, failure)
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


def _ids_of_holders(store: Store, keys: set[str]) -> dict[str, int]:
    """The beanstalkd ids of jobs holding unique keys; NOT_SCHEDULED for one beanstalkd does
    not hold now (never put yet, being recovered, or done while an expiring key holds)."""
    if not keys:
        return {}
    ids = {key: NOT_SCHEDULED for key in keys}
    for key, status in store.get_status_many(sorted(keys)).items():
        if status.ref is not None and not is_claim(status.ref):
            ids[key] = status.ref.job_id
    return ids


def _start_write(store: Store, records: list[JobRecord]) -> Callable[[], None]:
    """The durable write of ``records`` begun; the function returned waits for it (and raises
    as :func:`_write_ahead`). A store without ``put_many_started`` writes at once."""
    start = getattr(store, "put_many_started", None)
    if start is None:
        _write_ahead(store, records)
        return _written
    try:
        finish = start(records)
    except StoreOutcomeUnknownError as exc:
        raise outcome_unknown(exc, records) from exc

    def wait() -> None:
        try:
            finish()
        except StoreOutcomeUnknownError as exc:
            raise outcome_unknown(exc, records) from exc

    return wait


def _written() -> None:
    pass


def _withdraw(store: Store, written: Callable[[], None], records: list[JobRecord]) -> None:
    """The batch before failed (and raises): the records written ahead for the next one are
    removed, so that the sweeper does not put jobs of an add that raised."""
    try:
        written()
        store.delete_many([record.key for record in records])
    except KQueueError as exc:
        logger.warning("%d record(s) written ahead of a failed add left: %s", len(records), exc)


def _write_ahead(
    store: Store, records: list[JobRecord], claims: Sequence[UniqueClaim | None] | None = None
) -> list[str | None]:
    """The durable write; raises before anything reaches beanstalkd. A write whose reply
    never came is reported with the keys of its jobs (they may be accepted all the same).
    With ``claims``, the store's put_unique: the holder of each key found held (None where
    the record was written)."""
    try:
        if claims is None:
            store.put_many(records)
            return [None] * len(records)
        return store.put_unique(records, claims, now=time.time())
    except StoreOutcomeUnknownError as exc:
        raise outcome_unknown(exc, records) from exc
