"""Recovery: re-enqueue every stored job that beanstalkd no longer holds.

One pass walks the store in pages. For each record older than the grace period it asks
beanstalkd whether the job its reference names is still there *and is this record's job*
(``peek`` the id, compare the key in the body: a beanstalkd restarted without a binlog reuses
ids from 1). A job found in any state (ready, delayed, reserved, buried) is left alone; a job
found under a new server id (a binlog restart) gets its reference updated. Anything else is
put again, under a compare-and-set claim on the record so that several sweepers never put the
same job twice. Buried records are restored buried.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.errors import BrokerConnectionError, KQueueError
from kqueue.job import SUSPEND_SECONDS
from kqueue.middleware.base import Middleware
from kqueue.serialization import decode_body, record_body
from kqueue.stores.base import BrokerRef, JobRecord, Store, iter_records

logger = logging.getLogger("kqueue")

BURY_HOLD = 24 * 3600
"""A recovered dead letter is put delayed by this much, then buried at once: no worker can
take it in between (and should the sweeper die right then, it runs once, a day later)."""

CLAIM_PREFIX = "claim:"
"""Server ids starting with this mark a record claimed by a sweeper that is re-enqueueing it."""


@dataclass
class SweepReport:
    """What one recovery pass found and did.

    ``requeued`` counts every job put again (``requeued_unscheduled`` of them had never reached
    beanstalkd: accepted while it was down, or their producer died), ``live`` the jobs found
    where their reference says, ``references_updated`` those found under a new server id (a
    binlog restart), ``claimed_elsewhere`` records another sweeper is handling.
    """

    scanned: int = 0
    live: int = 0
    young: int = 0
    requeued: int = 0
    requeued_unscheduled: int = 0
    requeued_buried: int = 0
    references_updated: int = 0
    claimed_elsewhere: int = 0
    stale_dropped: int = 0
    suspensions_reapplied: int = 0
    errors: list[str] = field(default_factory=list)
    server_id: str = ""
    seconds: float = 0.0
    grace: float = 0.0

    def summary(self) -> str:
        """One line for a log: the counts that are not zero, and the time taken."""
        counts = {
            name: value
            for name, value in vars(self).items()
            if isinstance(value, int) and value and name != "scanned"
        }
        shown = ", ".join(f"{name} {value}" for name, value in counts.items())
        errors = f", {len(self.errors)} error(s)" if self.errors else ""
        return (
            f"recovery pass: scanned {self.scanned}{': ' + shown if shown else ''}{errors} "
            f"in {self.seconds:.2f} s"
        )

    def advice(self) -> str | None:
        """Why nothing was put back although records were left, and what to do; or None.

        Records younger than the grace period are left to their producers (they may be
        between the store write and the put). Right after a broker restart every record can
        be that young: the next pass, or one with a shorter grace, puts them back.
        """
        if not self.young or self.requeued or self.requeued_buried:
            return None
        return (
            f"{self.young} record(s) younger than the grace period ({self.grace:g} s) were "
            f"left to their producers: a pass after {self.grace:g} s puts back any that "
            "beanstalkd lacks by then (a sweeper does it by itself); right after a broker "
            "restart, --grace 0 (kqueue sweep) or recovery_grace= (the queue) does it now"
        )


def is_claim(ref: BrokerRef | None) -> bool:
    """True for the placeholder reference a sweeper sets while it re-enqueues a record."""
    return ref is not None and ref.server_id.startswith(CLAIM_PREFIX)


def _claim_expired(ref: BrokerRef, now: float) -> bool:
    return ref.job_id < now


class Sweep:
    """One recovery pass over a store, against one beanstalkd connection."""

    def __init__(
        self,
        store: Store,
        conn: BeanstalkConnection,
        *,
        tube_prefix: str,
        grace: float,
        claim_lease: float = 60.0,
        page_size: int = 500,
        events: Middleware | None = None,
    ) -> None:
        self.store = store
        self.events = events or Middleware()
        self.conn = conn
        self.tube_prefix = tube_prefix
        self.grace = grace
        self.claim_lease = claim_lease
        self.page_size = page_size
        self.token = uuid.uuid4().hex[:12]

    def run(self, progress: Callable[[], None] | None = None) -> SweepReport:
        """Walk every record once; never raises for one bad record (it lands in errors).

        ``progress`` is called once per record looked at.
        """
        started = time.monotonic()
        report = SweepReport(server_id=self.conn.stats()["id"], grace=self.grace)
        self._reapply_suspensions(report)
        for record in iter_records(self.store, page_size=self.page_size):
            report.scanned += 1
            if progress is not None:
                progress()
            try:
                self._check(record, report)
            except BrokerConnectionError:
                raise  # the broker is gone: this pass is over, the next one retries
            except KQueueError as exc:
                report.errors.append(f"{record.key}: {exc}")
        report.seconds = time.monotonic() - started
        self.events.after_sweep(report)
        return report

    def _reapply_suspensions(self, report: SweepReport) -> None:
        for job_type in sorted(self.store.suspended()):
            tube = self.tube_prefix + job_type
            self.conn.watch(tube)  # keeps the tube, and so its pause, alive
            stats = self.conn.stats_tube(tube) or {}
            if stats.get("pause", 0) == 0:
                self.conn.pause_tube(tube, SUSPEND_SECONDS)
                report.suspensions_reapplied += 1

    def _check(self, record: JobRecord, report: SweepReport) -> None:
        now = time.time()
        if now - max(record.created_at, record.updated_at) < self.grace:
            report.young += 1
            return
        ref = record.ref
        if is_claim(ref):
            assert ref is not None
            if not _claim_expired(ref, now):
                report.claimed_elsewhere += 1
                return
        elif ref is not None and self._holds(record, ref, report):
            return
        self._requeue(record, report)

    def holds(self, record: JobRecord, server_id: str) -> bool:
        """True if beanstalkd holds this record's job now (in any state)."""
        ref = record.ref
        if ref is None or is_claim(ref):
            return False
        return self._holds(record, ref, SweepReport(server_id=server_id))

    def _holds(self, record: JobRecord, ref: BrokerRef, report: SweepReport) -> bool:
        """True if beanstalkd still holds this record's job (fixing the reference if moved)."""
        found = self.conn.peek(ref.job_id)
        if found is not None:
            body = decode_body(found.body)
            if body is not None and body.key == record.key:
                report.live += 1
                if ref.server_id != report.server_id:
                    # Restored by a binlog restart under a new server id: same job, new name.
                    moved = BrokerRef(report.server_id, ref.job_id)
                    if self.store.swap_reference(record.key, ref, moved, now=record.updated_at):
                        report.references_updated += 1
                return True
            # An id reused after a restart, holding a reference of ours whose record is gone:
            # drop it (the worker would drop it too, without running it).
            stale = body is not None and body.stored and self._is_stale(found.id, body.key)
            if stale and self.conn.delete(found.id):
                report.stale_dropped += 1
        return False

    def _is_stale(self, job_id: int, key: str) -> bool:
        """True for a job in one of this queue's tubes whose record is gone. Another
        application's job (another prefix, another store) is never touched."""
        stats = self.conn.stats_job(job_id) or {}
        ours = str(stats.get("tube", "")).startswith(self.tube_prefix)
        return ours and self.store.get(key) is None

    def _requeue(self, record: JobRecord, report: SweepReport) -> None:
        now = time.time()
        claim = BrokerRef(f"{CLAIM_PREFIX}{self.token}", int(now + self.claim_lease))
        if not self.store.swap_reference(record.key, record.ref, claim, now=now):
            report.claimed_elsewhere += 1
            return
        body = record_body(record)
        # A postdated job keeps what is left of its delay; a retry waiting out its backoff
        # runs now.
        delay = 0 if record.attempts else max(0, math.ceil(record.created_at + record.delay - now))
        if record.state == "buried":
            delay = BURY_HOLD  # out of workers' reach until it is buried again below
        try:
            self.conn.use(self.tube_prefix + record.job_type)
            job_id = self.conn.put(body, priority=record.priority, delay=delay, ttr=record.ttr)
        except KQueueError:
            # Hand the record back at once rather than let the claim block it for a lease.
            self.store.swap_reference(record.key, claim, record.ref, now=record.updated_at)
            raise
        new_ref = BrokerRef(report.server_id, job_id)
        self.store.swap_reference(record.key, claim, new_ref, now=time.time())
        if record.state == "buried":
            self._bury_again(record, job_id)
        if record.state == "buried":
            report.requeued_buried += 1
        else:
            report.requeued += 1
        if record.ref is None:
            report.requeued_unscheduled += 1  # never reached beanstalkd: not a broker loss
        self.events.on_recovered(record, job_id)
        _log_recovered(record, job_id)

    def _bury_again(self, record: JobRecord, job_id: int) -> None:
        """A dead letter goes back to beanstalkd buried, and its record stays buried."""
        if self.conn.reserve_job(job_id) is not None:
            self.conn.bury(job_id, priority=record.priority)
        self.store.record_attempt(
            record.key,
            attempts=record.attempts,
            last_error=record.last_error,
            state="buried",
            now=time.time(),
        )


def _log_recovered(record: JobRecord, job_id: int) -> None:
    """One line per recovered job, at DEBUG: the pass's INFO summary counts them."""
    logger.debug(
        "recovered job key=%s type=%s: beanstalkd had lost it; re-enqueued as %s",
        record.key,
        record.job_type,
        job_id,
        extra={
            "job_type": record.job_type,
            "key": record.key,
            "job_id": job_id,
            "outcome": "recovered",
            "attempt": record.attempts,
        },
    )


class Sweepable(Protocol):
    """What a :class:`RecoverySweeper` needs: a queue's ``sweep`` (a KQueue has it)."""

    def sweep(self, *, grace: float | None = None) -> SweepReport: ...


class RecoverySweeper:
    """Runs recovery passes every ``interval`` seconds on a background thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Several sweepers (one per
    worker host) may run at once. The last report is kept in :attr:`last_report`, the sums of
    every pass's counts in :attr:`totals`.
    """

    def __init__(
        self,
        queue: Sweepable,
        *,
        interval: float = 30.0,
        grace: float | None = None,
    ) -> None:
        self.queue = queue
        self.interval = interval
        self.grace = grace
        self.last_report: SweepReport | None = None
        self.passes = 0
        self.totals: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RecoverySweeper:
        """Start the background thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="kqueue-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> RecoverySweeper:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.queue.sweep(grace=self.grace)
                self.last_report = report
                self.passes += 1
                self.totals.update(
                    {k: v for k, v in vars(report).items() if isinstance(v, int) and v}
                )
            except KQueueError as exc:
                logger.warning("recovery pass failed: %s", exc)
            self._stop.wait(self.interval)
