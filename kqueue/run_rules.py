"""The rules both job runners follow, without I/O: which reserved jobs may run, with what.

The sync runner (:mod:`kqueue.runner`) and its asyncio twin (:mod:`kqueue.aio.prepare`,
:mod:`kqueue.aio.runner`) read the same bodies, records and counters and differ only in how
they wait for them; every decision made on what they read is taken here, once: whether a
body is readable, whether its record still wants it run, its attempt number, which copies
must be checked against their whole record, what a job is built from, and what its log
lines say.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kqueue.beanstalk.commands import JobCounts
from kqueue.beanstalk.wire import ReservedJob
from kqueue.job import Job
from kqueue.middleware.base import DropReason
from kqueue.serialization import Body
from kqueue.stores.base import BrokerRef, JobRecord, RecordStatus

if TYPE_CHECKING:
    from kqueue.lane_gate import LaneGate

logger = logging.getLogger("kqueue")

MAX_ERROR_TEXT = 2000
"""Characters, at most, of an error kept in a log line or on a record."""


def store_reads(
    window: Sequence[ReservedJob], bodies: Sequence[Body | None], server_id: str
) -> tuple[list[tuple[str, BrokerRef]], list[str]]:
    """What a window asks of the store: the copies to read checked against the job held
    (``(key, ref)``), and the keys of references whose payload only the store has."""
    copies = [
        (body.key, BrokerRef(server_id, reserved.id))
        for reserved, body in zip(window, bodies, strict=True)
        if body is not None and body.mode == "s"
    ]
    refs = [body.key for body in bodies if body is not None and body.mode == "r"]
    return copies, refs


def job_args(job_id: int, body: Body, data: Any, attempts: int) -> dict[str, Any]:
    """The fields of the :class:`~kqueue.job.Job` a reserved body becomes (its connection is
    the caller's to add)."""
    return {
        "id": job_id,
        "job_type": body.job_type,
        "data": data,
        "priority": body.priority,
        "ttr": body.ttr,
        "key": body.key,
        "stored": body.stored,
        "known_attempts": attempts,
    }


def payload_of(body: Body, record: JobRecord | RecordStatus | None) -> bytes:
    """The encoded payload to run: the record's where it was read whole, else the body's."""
    return record.payload if isinstance(record, JobRecord) else body.payload


def doubtful_copies(
    window: Sequence[ReservedJob],
    bodies: Sequence[Body | None],
    records: Mapping[str, JobRecord | RecordStatus],
    server_id: str,
) -> list[str]:
    """The keys of the window's copies whose record must be read whole before they run.

    A body's copy of the payload is trusted only when the record names that very job. A
    copy whose record names no job yet (the producer's reference swap may still be on its
    way, or another client forged the body) or another job is checked against the whole
    record, so a forged copy never runs its own payload, or another job type's handler,
    under another job's key."""
    return [
        body.key
        for reserved, body in zip(window, bodies, strict=True)
        if body is not None
        and body.mode == "s"
        and isinstance(status := records.get(body.key), RecordStatus)
        and status.ref != BrokerRef(server_id, reserved.id)
    ]


def trust_whole(
    records: dict[str, JobRecord | RecordStatus],
    doubtful: Sequence[str],
    whole: Mapping[str, JobRecord],
) -> None:
    """Put the whole records read for ``doubtful`` copies in place of their statuses (a
    record gone meanwhile: the job finished elsewhere, so its copy is stale)."""
    for key in doubtful:
        if key in whole:
            records[key] = whole[key]
        else:
            records.pop(key, None)


def why_unreadable(
    body: Body | None,
    counts: JobCounts | None,
    records: Mapping[str, JobRecord | RecordStatus],
    tube_prefix: str,
    *,
    has_store: bool,
    lanes: LaneGate | None = None,
) -> str | None:
    """Why a reserved body must not run at all (it is buried), or None. With ``lanes``, a
    body from any lane of the prefix is readable (its type's own tube holds none)."""
    if body is None:
        return "foreign or corrupt job body"
    in_lane = lanes is not None and counts is not None and lanes.accepts_tube(counts.tube)
    if counts is not None and not in_lane and counts.tube != tube_prefix + body.job_type:
        return f"body names job type {body.job_type!r}, not its tube's"
    if body.stored and not has_store:
        return "a reference, but no store here"
    record = records.get(body.key) if body.stored else None
    if isinstance(record, JobRecord) and record.job_type != body.job_type:
        return f"body names the record of a {record.job_type!r} job"
    return None


def why_not_runnable(
    job_id: int,
    key: str,
    record: JobRecord | RecordStatus | None,
    server_id: str,
    bond: frozenset[str] = frozenset(),
) -> DropReason | None:
    """Why a stored job must not run: its record is gone, or the record names another
    job on this server or on another server of ``bond`` (the ids of a bonded queue's servers
    connected now): a duplicate delivery; None if it may run."""
    if record is None:
        # Done or purged already: the reference is stale. Never run it.
        logger.debug("job %s key=%s: record gone, reference dropped", job_id, key)
        return "stale"
    current = record.ref
    if current is not None and current.server_id == server_id and current.job_id != job_id:
        # Another job on this very server carries the record (recovery re-enqueued it
        # while this one was thought lost): this one is a duplicate delivery. A reference
        # naming another server proves nothing (a binlog restart renames the server).
        logger.warning("job %s key=%s: duplicate reference dropped", job_id, key)
        return "duplicate"
    if current is not None and current.server_id != server_id and current.server_id in bond:
        # The record was moved to a job on another live server of the queue (a put retried
        # there after this server froze, a recovery or a drain that moved it): that job is
        # the one to run. Only an id the queue is connected to now counts: a server that
        # restarted answers with a new id, so its renamed jobs are never taken for copies.
        logger.warning("job %s key=%s: copy of a job now on %s dropped", job_id, key, current)
        return "duplicate"
    return None


def live_record(
    job_id: int,
    body: Body,
    records: Mapping[str, JobRecord | RecordStatus],
    server_id: str,
    bond: frozenset[str] = frozenset(),
) -> tuple[JobRecord | RecordStatus | None, DropReason | None]:
    """The record a readable body runs with (None for an inline job), and why it must not
    run (:func:`why_not_runnable`; None for an inline job or one that may run)."""
    if not body.stored:
        return None, None
    record = records.get(body.key)
    return record, why_not_runnable(job_id, body.key, record, server_id, bond)


def attempts_for(
    body: Body, counts: JobCounts | None, record: JobRecord | RecordStatus | None
) -> int:
    """This run's attempt number: failures counted on the record (by beanstalkd's releases
    for an inline job), plus earlier reserves that never finished, plus this one."""
    unfinished = 0 if counts is None else counts.unfinished
    if record is None:
        return (0 if counts is None else counts.releases) + unfinished + 1
    return record.attempts + unfinished + 1


def job_fields(job: Job, outcome: str, seconds: float | None = None) -> dict[str, object]:
    """The structured fields of a job's log line (``extra=``), which JSON logs carry as keys."""
    fields: dict[str, object] = {
        "job_type": job.job_type,
        "key": job.key,
        "job_id": job.id,
        "attempt": job.attempts,
        "outcome": outcome,
    }
    if seconds is not None:
        fields["duration_ms"] = round(seconds * 1000, 3)
    return fields


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for logs and records: bounded, no NUL bytes, never raises."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ itself fails
        text = f"{type(exc).__name__}: <unprintable>"
    return text.replace("\x00", "\\x00")[:MAX_ERROR_TEXT]


def log_failed(job: Job, exc: BaseException, seconds: float) -> None:
    """The WARNING line of an attempt whose handler raised."""
    logger.warning(
        "job %s type=%s attempt %d failed: %s",
        job.id,
        job.job_type,
        job.attempts,
        describe_error(exc),
        extra=job_fields(job, "failed", seconds),
    )


def log_skipped(job: Job, stopped: BaseException) -> None:
    """The INFO line of a job a middleware skipped before its handler."""
    logger.info(
        "job %s type=%s skipped: %s",
        job.id,
        job.job_type,
        stopped,
        extra=job_fields(job, "skipped"),
    )


def log_buried(job: Job, reason: str, error: str | None = None) -> None:
    """The ERROR line of a buried job: after its failed attempts (with the last ``error``),
    or unrun (``error`` None)."""
    if error is None:
        logger.error(
            "job %s type=%s buried: %s",
            job.id,
            job.job_type,
            reason,
            extra=job_fields(job, "buried"),
        )
        return
    logger.error(
        "job %s type=%s buried after %d attempts (%s): %s",
        job.id,
        job.job_type,
        job.attempts,
        reason,
        error,
        extra=job_fields(job, "buried"),
    )


def never_finished(job: Job, budget: int | None = None) -> str:
    """Why a job whose earlier attempts never finished (TTR ran out, worker died) is buried
    unrun, naming the retry ``budget`` where given."""
    reason = (
        f"never finished: {job.attempts - 1} attempt(s) ended with its TTR running out or "
        f"its worker dying"
    )
    return reason if budget is None else f"{reason} (budget {budget})"


def log_unreadable(job_id: int, tube: str, why: str) -> None:
    """The ERROR line of a body buried as unreadable."""
    logger.error("job %s in tube %s buried: %s", job_id, tube, why)
