"""The pure steps of adding jobs, shared by the sync and the asyncio producer (no I/O here).

An add is: :func:`job_options` (checked), :func:`encode_payloads`, :func:`new_records` (or
:func:`inline_bodies` without a store), the store write, the puts, then :func:`sort_outcomes`
says which jobs beanstalkd took (their references to save) and which stay for the sweeper.
The producers (:mod:`kqueue.producer`, :mod:`kqueue.aio.producer`) only do the I/O between.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from kqueue.beanstalk.commands import Pending
from kqueue.errors import (
    BrokerError,
    JobTooBigError,
    KQueueError,
    PayloadError,
    StoreOutcomeUnknownError,
    ValidationError,
)
from kqueue.job import check_delay, check_u32
from kqueue.keys import new_keys
from kqueue.lanes import routed_tube
from kqueue.serialization import CodecRegistry, encode_body
from kqueue.stores.base import BrokerRef, JobRecord, RefSwap, UniqueClaim, new_record

__all__ = [
    "BATCH_SIZE",
    "NOT_SCHEDULED",
    "Encoded",
    "JobOptions",
    "Outcomes",
    "check_sizes",
    "encode_payloads",
    "inline_bodies",
    "job_options",
    "new_records",
    "outcome_unknown",
    "report_unscheduled",
    "sort_outcomes",
    "too_big_for_copies",
]

logger = logging.getLogger("kqueue")

NOT_SCHEDULED = 0
"""The id of a job accepted into the store while beanstalkd was unreachable: the recovery
sweeper schedules it. Real beanstalkd ids start at 1."""

BATCH_SIZE = 1000
"""Jobs per store round trip and pipelined burst; a larger add_jobs call takes several."""

Encoded = tuple[str, bytes]
"""A payload encoded: (codec name, bytes)."""


class JobOptions(NamedTuple):
    """What every job of one add shares, checked."""

    job_type: str
    tube: str
    priority: int
    delay: int
    ttr: int


def job_options(
    job_type: str, priority: int, delay: float, ttr: int, *, tube_prefix: str, lanes: int = 0
) -> JobOptions:
    """The checked options of an add; ValidationError before anything is written. With
    ``lanes``, the tube is the type's lane (see :mod:`kqueue.lanes`)."""
    tube = routed_tube(job_type, tube_prefix, lanes)
    check_u32("priority", priority)
    whole_delay = check_delay(delay)
    check_u32("ttr", ttr, minimum=1)
    return JobOptions(job_type, tube, priority, whole_delay, ttr)


def encode_payloads(codecs: CodecRegistry, payloads: Iterable[Any]) -> list[Encoded]:
    """Every payload encoded, or PayloadError naming the first bad one (nothing added)."""
    if isinstance(payloads, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        payloads, Iterable
    ):
        raise ValidationError(
            f"add_jobs takes an iterable of payloads, not a single {type(payloads).__name__}"
        )
    encoded = []
    for index, payload in enumerate(payloads):
        try:
            encoded.append(codecs.encode(payload))
        except PayloadError as exc:
            raise PayloadError(f"payload {index}: {exc}; nothing was added") from exc
    return encoded


def inline_bodies(
    options: JobOptions, encoded: Sequence[Encoded], keys: Sequence[str] | None = None
) -> list[bytes]:
    """The beanstalkd bodies of jobs without a store: the payloads travel in them (``keys``:
    the jobs' keys; None: fresh ones)."""
    keys = new_keys(len(encoded)) if keys is None else keys
    return [
        encode_body(
            "i",
            key=key,
            codec=codec,
            priority=options.priority,
            ttr=options.ttr,
            job_type=options.job_type,
            payload=data,
        )
        for key, (codec, data) in zip(keys, encoded, strict=True)
    ]


def check_sizes(bodies: list[bytes], limit: int | None) -> None:
    """JobTooBigError (nothing added) if a body is over the server's ``max-job-size``."""
    if limit is None:
        return
    for index, body in enumerate(bodies):
        if len(body) > limit:
            which = f"job {index}: body" if len(bodies) > 1 else "job body"
            raise JobTooBigError(
                f"{which} of {len(body)} bytes exceeds beanstalkd's max job size of "
                f"{limit} bytes; configure a bulk store for large payloads (nothing was added)"
            )


def new_records(
    options: JobOptions,
    encoded: Sequence[Encoded],
    keys: Sequence[str] | None = None,
    claims: Sequence[UniqueClaim | None] | None = None,
) -> list[JobRecord]:
    """The store records of new jobs, named by ``keys`` (None: fresh ones); a job whose
    unique claim (``claims``) holds until it starts carries the key for its worker."""
    keys = new_keys(len(encoded)) if keys is None else keys
    now = time.time()
    records = [
        new_record(
            key,
            options.job_type,
            data,
            codec,
            priority=options.priority,
            delay=options.delay,
            ttr=options.ttr,
            now=now,
        )
        for key, (codec, data) in zip(keys, encoded, strict=True)
    ]
    for index, claim in enumerate(claims or ()):
        if claim is not None and claim.until == "start":  # the worker releases it
            records[index] = dataclasses.replace(
                records[index], unique_until_start=claim.unique_key
            )
    return records


def outcome_unknown(
    exc: StoreOutcomeUnknownError, records: Sequence[JobRecord]
) -> StoreOutcomeUnknownError:
    """The write-ahead's unknown outcome, reported with the keys of its jobs (they may be
    accepted all the same)."""
    keys = tuple(record.key for record in records)
    return type(
        exc
    )(  # the same class: ReplicationWaitError stays one
        f"{exc}; the {len(keys)} job(s) may be accepted all the same (keys "
        f"{', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}): if so the recovery "
        "sweeper delivers them, so look the keys up before adding them again",
        keys=keys,
    )


def too_big_for_copies(
    records: Sequence[JobRecord], pending: Sequence[Pending[int]], copy_max: int
) -> list[int]:
    """Indexes of the jobs refused as too big while carrying an inline copy: they go again
    as plain references (their records are durable already)."""
    return [
        index
        for index, slot in enumerate(pending)
        if isinstance(slot.error, JobTooBigError) and len(records[index].payload) <= copy_max
    ]


class Outcomes(NamedTuple):
    """What beanstalkd did with the puts of a batch."""

    ids: list[int]
    swaps: list[RefSwap]
    failed: list[str]
    failure: KQueueError | None


def sort_outcomes(
    records: Sequence[JobRecord],
    pending: Sequence[Pending[int] | None],
    server_id: str | Sequence[str],
    failure: KQueueError | None,
) -> Outcomes:
    """The ids of the jobs beanstalkd took (and their references), the keys of the rest.

    ``server_id``: the server that took them all, or one per job (jobs spread over several
    servers); "" where it is not known (no reference is saved for that job)."""
    ids: list[int] = []
    swaps: list[RefSwap] = []
    failed: list[str] = []
    for index, record in enumerate(records):
        slot = pending[index] if index < len(pending) else None
        if slot is not None and slot.done and slot.error is None:
            ids.append(slot.result())
            server_id_here = server_id if isinstance(server_id, str) else server_id[index]
            if server_id_here:
                swaps.append((record.key, None, BrokerRef(server_id_here, ids[-1])))
        else:
            ids.append(NOT_SCHEDULED)
            failed.append(record.key)
            failure = failure or (None if slot is None else slot.error)
    if failed and failure is None:
        failure = BrokerError("beanstalkd refused part of the batch")
    return Outcomes(ids, swaps, failed, failure)


def report_unscheduled(options: JobOptions, failed: list[str], failure: BaseException) -> None:
    """Log the jobs accepted into the store but not into beanstalkd."""
    logger.warning(
        "%d job(s) of type %s (first key=%s) accepted into the store, not yet into "
        "beanstalkd (%s); the recovery sweeper will deliver them",
        len(failed),
        options.job_type,
        failed[0],
        failure,
    )
