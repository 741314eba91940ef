"""Adding many jobs at once: one store round trip and one pipelined burst per batch.

The order of a single add holds for the batch: every payload is validated and encoded first
(one bad payload and nothing at all is written), then the records are written durably in one
``put_many``, then the references go to beanstalkd in one pipelined burst, then the job ids
are recorded with one ``swap_references``. Accepted still means durable: the store write
comes before any put, and a job whose put fails stays accepted for the recovery sweeper
(or, in strict mode, has its record removed and the error raised).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kqueue.errors import (
    BrokerError,
    JobTooBigError,
    KQueueError,
    PayloadError,
    StoreError,
    ValidationError,
)
from kqueue.job import check_delay, check_u32, tube_for
from kqueue.keys import new_keys
from kqueue.pipeline import Pending, Pipeline
from kqueue.serialization import encode_body
from kqueue.stores.base import BrokerRef, JobRecord, RefSwap, Store, new_record

if TYPE_CHECKING:
    from kqueue.queue import KQueue

logger = logging.getLogger("kqueue")

BATCH_SIZE = 1000
"""Jobs per store round trip and pipelined burst; a larger add_jobs call takes several."""

_NOT_SCHEDULED = 0


def add_batch(
    queue: KQueue,
    job_type: str,
    payloads: Iterable[Any],
    *,
    priority: int,
    delay: float,
    ttr: int,
) -> list[int]:
    """Validate and encode every payload, then add them in batches; the job ids in order."""
    tube = tube_for(job_type, queue.tube_prefix)
    check_u32("priority", priority)
    whole_delay = check_delay(delay)
    check_u32("ttr", ttr, minimum=1)
    if isinstance(payloads, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        payloads, Iterable
    ):
        raise ValidationError(
            f"add_jobs takes an iterable of payloads, not a single {type(payloads).__name__}"
        )
    encoded = []
    for index, payload in enumerate(payloads):
        try:
            encoded.append(queue.codecs.encode(payload))
        except PayloadError as exc:
            raise PayloadError(f"payload {index}: {exc}; nothing was added") from exc
    batch = _Batch(queue, job_type, tube, priority, whole_delay, ttr)
    if queue.store is None:
        return batch.add_inline(encoded)
    ids: list[int] = []
    for start in range(0, len(encoded), BATCH_SIZE):
        ids += batch.add_stored(queue.store, encoded[start : start + BATCH_SIZE])
    return ids


class _Batch:
    """One add_jobs call: the settings every job shares, and the two ways of adding."""

    def __init__(
        self, queue: KQueue, job_type: str, tube: str, priority: int, delay: int, ttr: int
    ) -> None:
        self.queue = queue
        self.job_type = job_type
        self.tube = tube
        self.priority = priority
        self.delay = delay
        self.ttr = ttr

    def _inline_body(self, key: str, codec: str, payload: bytes) -> bytes:
        return encode_body(
            "i",
            key=key,
            codec=codec,
            priority=self.priority,
            ttr=self.ttr,
            job_type=self.job_type,
            payload=payload,
        )

    def add_inline(self, encoded: list[tuple[str, bytes]]) -> list[int]:
        """No store: the payloads travel in the bodies; all are size-checked before any put."""
        queue = self.queue
        keys = new_keys(len(encoded))
        bodies = [
            self._inline_body(key, codec, data)
            for key, (codec, data) in zip(keys, encoded, strict=True)
        ]
        queue._warn_inline()
        with queue._producer._lock:
            limit = queue._producer.server_stats().get("max-job-size")
            for index, body in enumerate(bodies):
                if isinstance(limit, int) and len(body) > limit:
                    raise JobTooBigError(
                        f"job {index}: body of {len(body)} bytes exceeds beanstalkd's max job "
                        f"size of {limit} bytes; nothing was added"
                    )
            ids: list[int] = []
            for start in range(0, len(bodies), BATCH_SIZE):
                pipe, pending = self._queue_puts(bodies[start : start + BATCH_SIZE])
                self._execute(pipe)
                ids += [slot.result() for slot in pending]
                queue.counters["added"] += len(pending)
        return ids

    def add_stored(self, store: Store, encoded: list[tuple[str, bytes]]) -> list[int]:
        """Records in one round trip, references in one burst, job ids in one swap."""
        queue = self.queue
        now = time.time()
        records = [
            new_record(
                key,
                self.job_type,
                data,
                codec,
                priority=self.priority,
                delay=self.delay,
                ttr=self.ttr,
                now=now,
            )
            for key, (codec, data) in zip(new_keys(len(encoded)), encoded, strict=True)
        ]
        store.put_many(records)  # raises before anything reaches beanstalkd
        bodies = [queue._reference_body(record) for record in records]
        server_id = ""
        failure: BrokerError | None = None
        with queue._producer._lock:
            pipe, pending = self._queue_puts(bodies)
            try:
                self._execute(pipe)
                server_id = queue._producer.server_id()
            except BrokerError as exc:
                failure = exc
        return self._settle(store, records, pending, server_id, failure)

    def _queue_puts(self, bodies: list[bytes]) -> tuple[Pipeline, list[Pending[int]]]:
        """A pipeline with ``use`` (when needed) and a put for every body."""
        pipe = self.queue._producer.pipeline()
        if self.queue._producer_tube != self.tube:
            pipe.use(self.tube)
        pending = [
            pipe.put(body, priority=self.priority, delay=self.delay, ttr=self.ttr)
            for body in bodies
        ]
        return pipe, pending

    def _execute(self, pipe: Pipeline) -> None:
        self.queue._producer_tube = None  # unknown until the burst went through
        pipe.execute()
        self.queue._producer_tube = self.tube

    def _settle(
        self,
        store: Store,
        records: list[JobRecord],
        pending: list[Pending[int]],
        server_id: str,
        failure: BrokerError | None,
    ) -> list[int]:
        """Record the ids of the jobs beanstalkd took; leave (or, strict, drop) the rest."""
        queue = self.queue
        ids: list[int] = []
        swaps: list[RefSwap] = []
        failed: list[str] = []
        for record, slot in zip(records, pending, strict=True):
            if slot.done and slot.error is None:
                ids.append(slot.result())
                if server_id:
                    swaps.append((record.key, None, BrokerRef(server_id, ids[-1])))
            else:
                ids.append(_NOT_SCHEDULED)
                failed.append(record.key)
                failure = failure or _as_broker_error(slot.error)
        if swaps:
            try:
                store.swap_references(swaps, now=time.time())
            except StoreError as exc:
                # The jobs are in beanstalkd and will run: report them as added.
                logger.warning("%d job(s) put, references not saved: %s", len(swaps), exc)
        queue.counters["added"] += len(records) - (len(failed) if queue.strict else 0)
        if failed and queue.strict:
            store.delete_many(failed)
            raise failure or BrokerError("beanstalkd refused part of the batch")
        if failed:
            queue.counters["added_unscheduled"] += len(failed)
            logger.warning(
                "%d job(s) of type %s accepted into the store, not yet into beanstalkd (%s); "
                "the recovery sweeper will deliver them",
                len(failed),
                self.job_type,
                failure,
            )
        return ids


def _as_broker_error(error: KQueueError | None) -> BrokerError | None:
    return error if isinstance(error, BrokerError) else None
