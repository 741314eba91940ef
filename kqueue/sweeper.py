"""Recovery: re-enqueue every stored job that beanstalkd no longer holds.

A pass asks the store which servers its records' references name (an index: no record is read
for it) and looks only at the records that can be wrong:

- records of a server that is not the one answering now (it restarted, empty or from its
  binlog, or was replaced): each is checked at once, whatever its age, by peeking its job id
  and comparing the key in the body (a beanstalkd restarted without a binlog reuses ids from
  1). Found: the reference is renamed to the new server id. Not found: put again;
- records without a reference older than the grace period (accepted while beanstalkd was down,
  or their producer died between the two writes), read from the store's index by time
  (``scan_unscheduled``), so that the records producers are still putting cost nothing: put;
- claims of another sweeper whose lease ran out (it died mid-put): put. A claim names its
  lease's end in its server id, so the claims still running cost nothing either.

Records referencing the server that answers now are trusted without a look: a beanstalkd that
did not restart loses a job only to a ``delete`` (see docs/reliability.md). So a pass over an
unchanged broker costs what is wrong, not what is waiting. ``verify=True`` checks every
record: those of the answering server (in pipelined bursts of peeks), every record without a
reference (young ones counted) and every claim. Puts go out as ``add_jobs`` sends them:
claims in one store call, puts in one pipelined burst, new references in one store call, a
page at a time; the claim is a compare-and-set, so several sweepers never put the same job
twice. Buried records are restored buried.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pending, Pipeline
from kqueue.claims import CLAIM_PREFIX, claim_expired, claim_running, is_claim, new_claim
from kqueue.errors import BrokerConnectionError, BrokerError, KQueueError
from kqueue.held import HeldCheck
from kqueue.job import SUSPEND_SECONDS
from kqueue.lanes import routed_tube
from kqueue.middleware.base import Middleware
from kqueue.serialization import record_body
from kqueue.stores.base import (
    BrokerRef,
    JobRecord,
    RefSwap,
    Store,
    UnscheduledCursor,
    unscheduled_cursor,
)

__all__ = [
    "CLAIM_PREFIX",
    "RecoverySweeper",
    "Sweep",
    "SweepReport",
    "Sweepable",
    "is_claim",
]

logger = logging.getLogger("kqueue")

BURY_HOLD = 24 * 3600
"""A recovered dead letter is put delayed by this much, then buried at once: no worker can
take it in between (and should the sweeper die right then, it runs once, a day later)."""


@dataclass
class SweepReport:
    """What one recovery pass found and did.

    ``requeued`` counts every job put again (``requeued_unscheduled`` of them had never reached
    beanstalkd: accepted while it was down, or their producer died), ``live`` the jobs looked
    at and found where their reference says, ``references_updated`` those found under a new
    server id (a binlog restart), ``claimed_elsewhere`` records another sweeper is handling,
    ``young`` records without a reference left to their producer for the grace period (a
    pass that does not verify counts them in the store's index without reading them).
    ``scanned`` counts the records looked at: those of other servers, without a reference or
    claimed (all of them with ``verified``). ``servers_gone`` is how many server ids the
    store's references name besides the one answering: above 0, the broker restarted or was
    replaced since those jobs were put. ``unique_keys_freed`` counts the claims of unique keys
    deleted because they no longer held their key (housekeeping: see Store.prune_unique).
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
    servers_gone: int = 0
    verified: bool = False
    unique_keys_freed: int = 0


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
        page_size: int = 1000,
        events: Middleware | None = None,
        verify: bool = False,
        others: Sequence[tuple[BeanstalkConnection, str]] = (),
        wait_for: Collection[str] = (),
        lanes: int = 0,
    ) -> None:
        self.store = store
        self.events = events or Middleware()
        self.conn = conn
        self.tube_prefix = tube_prefix
        self.lanes = lanes
        """Jobs put back go to their type's lane when above 0 (see :mod:`kqueue.lanes`)."""
        self.grace = grace
        self.claim_lease = claim_lease
        self.page_size = page_size
        self.verify = verify
        self.token = uuid.uuid4().hex[:12]
        self.check = HeldCheck(conn, store, tube_prefix=tube_prefix)
        self.others = list(others)
        """The other live servers of a bonded queue: (connection, server id). Their jobs
        are trusted like those of ``conn``; jobs of servers gone are looked for on every
        live one, and put back on ``conn``."""
        self.wait_for = frozenset(wait_for)
        """Ids of servers down for now (not yet for long): their jobs are left alone."""
        self._checks = {self.conn: self.check}
        for other, _ in self.others:
            self._checks[other] = HeldCheck(other, store, tube_prefix=tube_prefix)

    def run(self, progress: Callable[[], None] | None = None) -> SweepReport:
        """Look at every record that may be wrong once; never raises for one bad record or
        page (it lands in errors). ``progress`` is called once per record looked at."""
        started = time.monotonic()
        report = SweepReport(
            server_id=self.conn.stats()["id"], grace=self.grace, verified=self.verify
        )
        live = self._live(report)
        for conn in live:
            self._reapply_suspensions(conn, report)
        servers = self.store.referenced_servers()
        ids = set(live.values())
        report.servers_gone = sum(
            1 for server in servers if server not in ids and not server.startswith(CLAIM_PREFIX)
        )
        before = time.time() - self.grace  # records without a reference: only older ones
        for server in [*sorted(servers), None]:
            if not self.verify and (server in ids or self._skipped(server, report.server_id)):
                continue  # a live server's (of a bonded queue, any of them)
            if server in self.wait_for:
                continue  # a bonded server down for now: its jobs may come back with it
            for page in self._pages(server, before):
                report.scanned += len(page)
                if progress is not None:
                    for _ in page:
                        progress()
                self._check_page(page, report)
        if not self.verify:  # the young were not read: counted in the store's index
            report.young += self.store.count_unscheduled(since=before)
        report.seconds = time.monotonic() - started
        self.events.after_sweep(report)
        return report

    def _skipped(self, server: str | None, answering: str) -> bool:
        """Whether a pass that does not verify leaves the records of ``server`` unread: the
        answering server's (it did not restart: see the module docstring) and running
        claims' (their sweeper is putting them)."""
        return server is not None and (server == answering or claim_running(server, time.time()))

    def _pages(self, server: str | None, before: float) -> Iterator[list[JobRecord]]:
        """The records referencing ``server``, a page at a time (memory stays bounded);
        without ``verify``, of the records without a reference only those written before
        ``before`` (past the grace)."""
        if server is None and not self.verify:
            yield from self._unscheduled_pages(before)
            return
        after: str | None = None
        while True:
            page = self.store.scan_referencing(server, after=after, limit=self.page_size)
            if page:
                yield page
            if len(page) < self.page_size:
                return
            after = page[-1].key

    def _unscheduled_pages(self, before: float) -> Iterator[list[JobRecord]]:
        """The records without a reference written before ``before``, a page at a time, from
        the store's index by time."""
        after: UnscheduledCursor | None = None
        while True:
            page = self.store.scan_unscheduled(before=before, after=after, limit=self.page_size)
            if page:
                yield page
            if len(page) < self.page_size:
                return
            after = unscheduled_cursor(page[-1])

    def _check_page(self, page: list[JobRecord], report: SweepReport) -> None:
        try:
            lost = self._triage(page, report)
            self._put_back(lost, report)
        except BrokerConnectionError:
            raise  # the broker is gone: this pass is over, the next one retries
        except KQueueError as exc:
            report.errors.append(f"{len(page)} records from key {page[0].key}: {exc}")

    def _live(self, report: SweepReport) -> dict[BeanstalkConnection, str]:
        """Every live server's connection and id, the sweeping one first."""
        return {self.conn: report.server_id, **dict(self.others)}

    def _reapply_suspensions(self, conn: BeanstalkConnection, report: SweepReport) -> None:
        for job_type in sorted(self.store.suspended()):
            tube = self.tube_prefix + job_type
            conn.watch(tube)  # keeps the tube, and so its pause, alive
            stats = conn.stats_tube(tube) or {}
            if stats.get("pause", 0) == 0:
                conn.pause_tube(tube, SUSPEND_SECONDS)
                report.suspensions_reapplied += 1

    # -- which records are lost ------------------------------------------------------------

    def _triage(self, page: list[JobRecord], report: SweepReport) -> list[JobRecord]:
        """The records of ``page`` to put again; the others are counted where they belong."""
        now = time.time()
        lost: list[JobRecord] = []
        referenced: list[JobRecord] = []
        for record in page:
            ref = record.ref
            if ref is None:
                # Only here may a producer still be on its way to the put: leave it the grace.
                if now - max(record.created_at, record.updated_at) < self.grace:
                    report.young += 1
                else:
                    lost.append(record)
            elif is_claim(ref):
                if claim_expired(ref, now):
                    lost.append(record)
                else:
                    report.claimed_elsewhere += 1
            else:
                referenced.append(record)
        return lost + self._not_held(referenced, report)

    def _not_held(self, records: list[JobRecord], report: SweepReport) -> list[JobRecord]:
        """The records whose job beanstalkd does not hold (see :mod:`kqueue.held`): a record
        naming a live server is looked for there, one naming a server gone on every live one.
        Jobs found under a new server id (a binlog restart) get their references renamed."""
        live = self._live(report)
        ids = set(live.values())
        renames: list[RefSwap] = []
        remaining = records
        for conn, server_id in live.items():
            here = [
                r
                for r in remaining
                if r.ref is not None
                and (r.ref.server_id == server_id or r.ref.server_id not in ids)
            ]
            if not here:
                continue
            _, held, dropped = self._checks[conn].sort(here, server_id)
            report.live += len(held)
            report.stale_dropped += dropped
            renames += [
                (r.key, r.ref, BrokerRef(server_id, r.ref.job_id))
                for r in held
                if r.ref is not None and r.ref.server_id != server_id
            ]
            found = {r.key for r in held}
            remaining = [r for r in remaining if r.key not in found]
        if renames:
            report.references_updated += self.store.swap_references(renames, now=time.time())
        return remaining

    def holds(self, record: JobRecord, server_id: str) -> bool:
        """True if beanstalkd holds this record's job now (in any state; of a bonded queue,
        on any live server)."""
        if not self.others:
            return self.check.holds(record)
        ref = record.ref
        if ref is None or is_claim(ref):
            return False
        return not self._not_held([record], SweepReport(server_id=server_id))

    def move(self, records: list[JobRecord], report: SweepReport) -> None:
        """Put ``records`` on this pass's server as recovery does (claim, put, swap), whatever
        their references name now: how a drained server's jobs go to the others."""
        self._put_back(records, report)

    # -- putting them back -----------------------------------------------------------------

    def _put_back(self, records: list[JobRecord], report: SweepReport) -> None:
        """Claim ``records`` in one store call, put the claimed ones in one pipelined burst,
        record their new references in one store call."""
        claim, mine = self._claim(records, report)
        if not mine:
            return
        pending, failure = self._put_burst(mine)
        done: list[tuple[JobRecord, int]] = []
        for record, slot in zip(mine, pending, strict=True):
            if slot.done and slot.error is None:
                done.append((record, slot.result()))
            else:
                # Hand the record back at once rather than let the claim block it for a lease.
                self.store.swap_reference(record.key, claim, record.ref, now=record.updated_at)
                if failure is None and slot.error is not None:
                    report.errors.append(f"{record.key}: {slot.error}")
        swaps = [(r.key, claim, BrokerRef(report.server_id, job_id)) for r, job_id in done]
        self.store.swap_references(swaps, now=time.time())
        for record, job_id in done:
            self.check.put_ids.add(job_id)
            self._recovered(record, job_id, report)
        if failure is not None:
            raise failure

    def _claim(
        self, records: list[JobRecord], report: SweepReport
    ) -> tuple[BrokerRef, list[JobRecord]]:
        """Claim the records (compare-and-set to a claim of this pass); the ones won."""
        now = time.time()
        claim = new_claim(self.token, int(now + self.claim_lease))
        if not records:
            return claim, []
        won = self.store.swap_references([(r.key, r.ref, claim) for r in records], now=now)
        mine = records
        if won < len(records):
            # Another sweeper (or a worker finishing) got to some first: ours carry our claim.
            status = self.store.get_status_many([record.key for record in records])
            mine = [r for r in records if r.key in status and status[r.key].ref == claim]
        report.claimed_elsewhere += len(records) - len(mine)
        return claim, mine

    def _put_burst(
        self, records: Sequence[JobRecord]
    ) -> tuple[list[Pending[int]], BrokerError | None]:
        """One pipelined burst of puts (``use`` where the tube changes)."""
        now = time.time()
        pipe = Pipeline(self.conn)
        used = self.conn.used
        pending = []
        for record in records:
            tube = routed_tube(record.job_type, self.tube_prefix, self.lanes)
            if tube != used:
                pipe.use(tube)
                used = tube
            pending.append(
                pipe.put(
                    record_body(record),
                    priority=record.priority,
                    delay=_delay(record, now),
                    ttr=record.ttr,
                )
            )
        try:
            pipe.execute()
        except BrokerError as exc:
            return pending, exc
        return pending, None

    def _recovered(self, record: JobRecord, job_id: int, report: SweepReport) -> None:
        if record.state == "buried":
            self._bury_again(record, job_id)
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


def _delay(record: JobRecord, now: float) -> int:
    """A postdated job keeps what is left of its delay; a retry waiting out its backoff runs
    now; a dead letter is held out of reach until it is buried again."""
    if record.state == "buried":
        return BURY_HOLD
    if record.attempts:
        return 0
    return max(0, math.ceil(record.created_at + record.delay - now))


class Sweepable(Protocol):
    """What a :class:`RecoverySweeper` needs (a KQueue has it): ``sweep`` for a pass, and
    ``new_connections`` for the connections (one per server) on which it watches the
    brokers' server ids. Optional: ``note_answering(answering)``, to keep which server ids
    answer at which address (address -> server id) for sweepers started later."""

    def sweep(self, *, grace: float | None = None, verify: bool = False) -> SweepReport: ...

    def new_connections(self) -> list[BeanstalkConnection]: ...


NOTE_EVERY = 5.0
"""Between passes, a background sweeper tells the store which servers answer this often (see
:mod:`kqueue.sightings`): a sweeper started later waits for a server that went down since
from the last of these, not from the last pass."""


class RecoverySweeper:
    """Runs recovery passes on a background thread: every ``interval`` seconds, and at once
    when the broker restarted.

    Between passes it asks each beanstalkd server for its id every ``check_interval``
    seconds (one ``stats`` round trip each): a new id means the broker restarted (empty, or
    from its binlog) or was replaced, and a pass runs then and there instead of at the end of
    the interval; the jobs the broker lost are put back by that pass whatever their age (see
    :class:`Sweep`).
    With ``verify_interval`` (seconds), a pass at least that long after the last verifying one
    also checks the jobs of the answering server (``verify=True``), for deployments where
    something besides kqueue may delete jobs. Use as a context manager, or call :meth:`start`
    and :meth:`stop`. Several sweepers (one per worker host) may run at once. The last report
    is kept in :attr:`last_report`, the sums of every pass's counts in :attr:`totals`, the
    restarts seen in :attr:`restarts_seen`.
    """

    def __init__(
        self,
        queue: Sweepable,
        *,
        interval: float = 30.0,
        grace: float | None = None,
        check_interval: float = 0.25,
        verify_interval: float | None = None,
    ) -> None:
        self.queue = queue
        self.interval = interval
        self.grace = grace
        self.check_interval = check_interval
        self.verify_interval = verify_interval
        self._verified_at = time.monotonic()
        self.last_report: SweepReport | None = None
        self.passes = 0
        self.restarts_seen = 0
        self.totals: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreachable: set[str] = set()  # addresses said not to answer
        self._retry_delay = min(interval, 1.0)

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
        conns = self.queue.new_connections()
        known: dict[str, str] = {}  # address -> the server id of the last pass
        due = 0.0  # the first pass runs at once
        noted = 0.0
        try:
            while not self._stop.is_set():
                ids = {conn.address: self._server_id(conn) for conn in conns}
                restarted = False
                for address, server in ids.items():
                    if server is not None and known.get(address, server) != server:
                        restarted = True
                        self.restarts_seen += 1
                        logger.warning(
                            "beanstalkd at %s restarted (server id %s, was %s): recovery pass now",
                            address,
                            server,
                            known[address],
                        )
                answering = {a: server for a, server in ids.items() if server is not None}
                if answering and time.monotonic() >= noted:
                    self._note(answering)
                    noted = time.monotonic() + NOTE_EVERY
                if answering and (restarted or time.monotonic() >= due):
                    ran = self._pass()
                    if ran is not None:
                        known.update(answering)
                    # A failed pass (the broker went down as it began) is tried again soon,
                    # not an interval later: the restart it missed may be noticed no more.
                    due = time.monotonic() + (self.interval if ran else self._retry_delay)
                self._stop.wait(max(0.0, min(self.check_interval, due - time.monotonic())))
        finally:
            for conn in conns:
                conn.close()

    def _note(self, answering: Mapping[str, str]) -> None:
        """Tell the queue which servers answer (a queue without ``note_answering``: nothing)."""
        note: Callable[[Mapping[str, str]], None] | None = getattr(
            self.queue, "note_answering", None
        )
        if note is not None:
            note(answering)

    def _server_id(self, conn: BeanstalkConnection) -> str | None:
        """The broker's server id now, or None while it does not answer (said once)."""
        try:
            server: str = conn.stats()["id"]
        except BrokerError as exc:
            if conn.address not in self._unreachable:
                logger.warning("recovery waits for beanstalkd: %s", exc)
            self._unreachable.add(conn.address)
            return None
        self._unreachable.discard(conn.address)
        return server

    def _pass(self) -> str | None:
        """One pass; the server id it ran against (None if it failed)."""
        verify = self.verify_interval is not None and (
            time.monotonic() - self._verified_at >= self.verify_interval
        )
        try:
            report = self.queue.sweep(grace=self.grace, verify=verify)
        except KQueueError as exc:
            logger.warning("recovery pass failed: %s", exc)
            return None
        self.last_report = report
        self.passes += 1
        if verify:
            self._verified_at = time.monotonic()
        self.totals.update(
            {
                k: v
                for k, v in vars(report).items()
                if isinstance(v, int) and not isinstance(v, bool) and v
            }
        )
        return report.server_id
