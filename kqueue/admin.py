"""Administration of a queue: suspend and resume, purge, kick, recovery passes, statistics.

:class:`Admin` works on a beanstalkd connection of its own (purge, kick and sweep each open
one more for their walk), so it never waits behind a worker's blocking reserve.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from kqueue.beanstalk import commands as beanstalk_commands
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline
from kqueue.beanstalk.wire import JobStats, ReservedJob, ServerStats, TubeStats
from kqueue.config import QueueConfig
from kqueue.errors import (
    BrokerError,
    ConfigurationError,
    JobNotFoundError,
    KQueueError,
    ValidationError,
)
from kqueue.job import SUSPEND_SECONDS, tube_for
from kqueue.kick import fresh_budget, kick_tube
from kqueue.lane_admin import buried_ids, of_type, peek_of_type, tubes_of
from kqueue.lane_gate import SUSPENDED_REFRESH, release_held
from kqueue.middleware.base import Middleware
from kqueue.purge import PurgeResult, payload_matcher, purge_tube, record_matcher
from kqueue.reports import (
    QueueStats,
    StoredCounts,
    keep_sweep_report,
    recent_sweep_reports,
    suspect_pages,
    sweep_advice,
    sweep_fields,
    sweep_summary,
)
from kqueue.results import worker_name
from kqueue.serialization import decode_body
from kqueue.servers import ServerConnections, address_of, connected, peek_in, sum_stats
from kqueue.sightings import note_answering, sighted_at
from kqueue.stores.base import BrokerRef, JobRecord, Store, iter_records
from kqueue.suspensions import SuspensionHolders
from kqueue.sweeper import Sweep, SweepReport, is_claim

__all__ = ["UNIQUE_PAGE", "Admin", "QueueStats", "StoredCounts", "sweep_advice", "sweep_summary"]

logger = logging.getLogger("kqueue")

T = TypeVar("T")


UNIQUE_PAGE = 5000
"""Unique-key claims a recovery pass looks at, at most, to delete those that no longer hold."""


class Admin:
    """Suspend, resume, purge, kick, sweep and stats for one queue's settings and store."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        store: Store | None,
        counters: Counter[str],
        events: Middleware,
    ) -> None:
        self.config = config
        self.store = store
        self.counters = counters
        self.events = events
        self.tube_prefix = config.tube_prefix
        self._servers = ServerConnections(config)
        self._conns = self._servers.conns
        self._conn = self._conns[0]
        self._claims_after: str | None = None  # where the next pass frees unique keys from
        self._sweeps = 0
        self._holders = SuspensionHolders(lambda conn: self._connection(address_of(conn)))

    def close(self) -> None:
        """Close the admin connections (a suspension outlives them: see :meth:`suspend`)."""
        for conn in self._conns:
            conn.close()
        self._holders.close()

    def _connection(self, address: tuple[str, int] | None = None) -> BeanstalkConnection:
        return self.config.new_connection(address)

    # -- administration --------------------------------------------------------------------

    def suspend(self, job_type: str) -> None:
        """Hold every job of this type (for every worker) until resume(); adds still work.

        beanstalkd forgets an empty tube nobody watches, and its pause with it, so this queue
        keeps watching the tube (without ever reserving from it) while it is open.

        With lanes, the type's own tube is paused all the same, and workers move the type's
        jobs they reserve from its lane into it (within ``SUSPENDED_REFRESH`` seconds of this
        call, as they read the suspended types from the store): that needs a store.
        """
        tube = tube_for(job_type, self.tube_prefix)
        if self.config.lanes and self.store is None:
            raise ConfigurationError(
                "suspend with lanes needs a bulk store (workers learn of it there)"
            )
        self.config.tube_of(job_type)  # with lanes: no lane's name
        if self.store is not None:
            self.store.set_suspended(job_type, True)

        def pause(conn: BeanstalkConnection) -> None:
            conn.watch(tube)
            conn.pause_tube(tube, SUSPEND_SECONDS)

        self._servers.each(pause)  # a server down meanwhile gets it from the next recovery pass
        logger.debug("job type %s suspended", job_type, extra={"job_type": job_type})

    def resume(self, job_type: str) -> None:
        """Deliver the jobs of a suspended type again.

        With lanes, the jobs held in the type's own tube go back to its lane, in a second
        pass too once every worker has read the store's suspended types again.
        """
        tube = tube_for(job_type, self.tube_prefix)
        if self.store is not None:
            self.store.set_suspended(job_type, False)
        if self.config.lanes and self.store is not None:
            self._release_held(job_type)

        def unpause(conn: BeanstalkConnection) -> None:
            conn.pause_tube(tube, 0)
            conn.ignore(tube)

        self._servers.each(unpause)
        self._holders.release(tube)  # the tube need no longer be kept
        logger.debug("job type %s resumed", job_type, extra={"job_type": job_type})

    def _release_held(self, job_type: str) -> None:
        """Move a resumed type's held jobs back to its lane, then again after the workers'
        refresh (a worker may still have moved one in after the first pass)."""
        assert self.store is not None
        store, prefix, lanes = self.store, self.tube_prefix, self.config.lanes
        moved = release_held(self._conn, store, job_type, prefix=prefix, lanes=lanes)
        time.sleep(SUSPENDED_REFRESH + 0.2)
        moved += release_held(self._conn, store, job_type, prefix=prefix, lanes=lanes)
        logger.debug("resume %s: %d held job(s) back in the lane", job_type, moved)

    def purge_jobs(
        self,
        job_type: str,
        pattern: str | bytes | re.Pattern[Any] | None = None,
        *,
        progress: Callable[[], None] | None = None,
    ) -> int:
        """Delete the ready, delayed and buried jobs of a type whose payload matches; a count.

        ``pattern`` is searched (``re.search``) in the encoded payload: the JSON text for
        JSON payloads, the bytes for bytes payloads (use a bytes pattern for those). None
        deletes every waiting job of the type. Jobs reserved by workers are left alone, and
        logged. Their stored records go with the deleted jobs.
        """
        tubes = tubes_of(self.config, job_type)
        matcher = None if pattern is None else payload_matcher(pattern, self.store)
        if self.config.lanes:
            matcher = of_type(job_type, matcher)
        results = [result for tube in tubes for result in self._purge(tube, matcher, progress)]
        bodies = [body for result in results for body in result.deleted_bodies]
        left_reserved = sum(result.left_reserved for result in results)
        keys = [body.key for body in map(decode_body, bodies) if body is not None and body.stored]
        lost = 0
        if self.store is not None:
            if keys:
                self.store.delete_many(keys)
            lost = self._purge_lost_records(job_type, pattern)
        if left_reserved:
            logger.warning(
                "purge of %s left %d job(s) alone: reserved by workers", job_type, left_reserved
            )
        deleted = len(bodies) + lost
        # The count is the return value; the log line is for tracing (the CLI prints it).
        logger.debug("purged %d job(s) of type %s", deleted, job_type, extra={"job_type": job_type})
        return deleted

    def _purge(
        self,
        tube: str,
        matcher: Callable[[bytes], bool] | None,
        progress: Callable[[], None] | None,
    ) -> list[PurgeResult]:
        """:func:`purge_tube` on every server, each on a connection of its own."""
        return self._servers.each(
            lambda conn: purge_tube(self._connection(address_of(conn)), tube, matcher, progress)
        )

    def _purge_lost_records(
        self, job_type: str, pattern: str | bytes | re.Pattern[Any] | None
    ) -> int:
        """Delete the matching records whose job beanstalkd no longer holds (lost, or never
        put), so that the sweeper cannot bring a purged job back."""
        assert self.store is not None
        matches = None if pattern is None else record_matcher(pattern)
        live = self._servers.live()
        (conn, server_id), others = live[0], live[1:]
        checker = Sweep(self.store, conn, tube_prefix=self.tube_prefix, grace=0, others=others)
        doomed: list[str] = []
        for record in iter_records(self.store, job_type=job_type):
            if matches is not None and not matches(record.payload):
                continue
            if not checker.holds(record, server_id):
                doomed.append(record.key)
        return self.store.delete_many(doomed) if doomed else 0

    def kick_buried(
        self,
        job_type: str,
        count: int | None = None,
        *,
        progress: Callable[[], None] | None = None,
    ) -> int:
        """Send buried jobs (dead letters) of a type back to ready, oldest first; how many.

        Each kicked job gets a fresh retry budget: its record's attempts start again at 0 and
        its state is ``enqueued`` again (so recovery would restore it ready, not buried).
        ``progress`` is called once per job kicked. With lanes, the buried jobs of a type are
        found through its records (a lane's buried jobs are of several types): that needs a
        store.
        """
        if self.config.lanes:
            return self._kick_by_records(job_type, count, progress)
        kicked = 0
        for conn in self._conns:
            if count is not None and kicked >= count:
                break
            left = None if count is None else count - kicked
            if len(self._conns) == 1:
                return self._kick_on(address_of(conn), job_type, left, progress)
            try:
                kicked += self._kick_on(address_of(conn), job_type, left, progress)
            except BrokerError as exc:
                logger.warning("kick: beanstalkd at %s left out: %s", conn.address, exc)
        return kicked

    def _kick_on(
        self,
        address: tuple[str, int],
        job_type: str,
        count: int | None,
        progress: Callable[[], None] | None,
    ) -> int:
        """:meth:`kick_buried` on one server."""
        tube = tube_for(job_type, self.tube_prefix)
        conn = self._connection(address)
        try:
            kicked = kick_tube(conn, tube, self.store, count, progress)
        finally:
            conn.close()
        logger.debug(
            "kicked %d buried job(s) of type %s", kicked, job_type, extra={"job_type": job_type}
        )
        return kicked

    def _kick_by_records(
        self, job_type: str, count: int | None, progress: Callable[[], None] | None
    ) -> int:
        """:meth:`kick_buried` with lanes: the type's buried jobs found through its records."""
        if self.store is None:
            raise ConfigurationError("kick by job type with lanes needs a bulk store")
        kicked = 0
        for job_id in buried_ids(self._conn, self.store, job_type):
            if count is not None and kicked >= count:
                break
            if self.kick_job(job_id):
                kicked += 1
                if progress is not None:
                    progress()
        return kicked

    def kick_job(self, job_id: int) -> bool:
        """Send one buried job (by beanstalkd id) back to ready with a fresh retry budget, as
        :meth:`kick_buried` does; False if beanstalkd holds no buried job of that id (of a
        bonded queue: the first server holding a buried job of that id)."""
        for conn in self._servers.holding(job_id):
            stats = conn.stats_job(job_id)
            found = conn.peek(job_id)
            # kick-job also moves a delayed job: only a buried one is kicked here.
            if stats is None or stats.get("state") != "buried" or found is None:
                continue
            if conn.kick_job(job_id):
                fresh_budget(self.store, found.body)
                return True
        return False

    def sweep(
        self,
        *,
        grace: float | None = None,
        progress: Callable[[], None] | None = None,
        verify: bool = False,
    ) -> SweepReport:
        """Run one recovery pass: re-enqueue every stored job that beanstalkd lost.

        Jobs of a broker that restarted are checked and put back at once, whatever their age.
        Records without a reference younger than ``grace`` seconds (default: the queue's
        ``recovery_grace``) are left alone, since their producer may still be putting them.
        Jobs referencing the broker that answers now are trusted without a look, unless
        ``verify`` (see :mod:`kqueue.sweeper`). Safe to run from several processes at once.
        Needs a bulk store.
        """
        if self.store is None:
            raise ConfigurationError("recovery needs a bulk store: KQueue(bulk_store=...)")
        conns = self._servers.each(lambda admin: connected(self._connection(address_of(admin))))
        suspended = [tube_for(job_type, self.tube_prefix) for job_type in self.store.suspended()]
        self._holders.hold(suspended, conns)  # see kqueue.suspensions
        try:
            report = self._sweep(self.store, conns, grace, verify).run(progress)
        finally:
            for conn in conns:
                conn.close()
        self._free_unique_keys(self.store, report)
        level = logging.WARNING if report.errors else logging.INFO
        logger.log(level, "%s", sweep_summary(report), extra=sweep_fields(report))
        keep_sweep_report(self.store, report, by=worker_name())
        return report

    def _sweep(
        self, store: Store, conns: list[BeanstalkConnection], grace: float | None, verify: bool
    ) -> Sweep:
        """A pass over the servers answering on ``conns``: of a bonded queue, the jobs put
        back go to the servers in turn, a pass at a time."""
        first = self._sweeps % len(conns)
        self._sweeps += 1
        conn, *others = conns[first:] + conns[:first]
        return Sweep(
            store,
            conn,
            tube_prefix=self.tube_prefix,
            lanes=self.config.lanes,
            grace=self.config.recovery_grace if grace is None else grace,
            events=self.events,
            verify=verify,
            others=[(other, other.server_id()) for other in others],
            wait_for=self._servers.down_for_now(conns, store),
        )

    def note_answering(self, answering: Mapping[str, str]) -> None:
        """Keep in the store that these servers (address -> server id) answer now; of a
        bonded queue with a store only. A store that fails costs a log line."""
        if len(self._conns) > 1 and self.store is not None:
            note_answering(self.store, answering)

    def recent_sweeps(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest recovery pass reports any sweeper left in the store, newest first:
        each a dict with ``at`` (Unix seconds), ``by`` (host:pid), ``summary`` (the log
        line) and the pass's counts. [] without a store."""
        return [] if self.store is None else recent_sweep_reports(self.store, limit)

    def _free_unique_keys(self, store: Store, report: SweepReport) -> None:
        """Delete a page of unique-key claims that no longer hold (their jobs gone or their
        time passed); the next pass goes on where this one stopped."""
        try:
            freed, self._claims_after = store.prune_unique(
                now=time.time(), after=self._claims_after, limit=UNIQUE_PAGE
            )
        except KQueueError as exc:
            report.errors.append(f"freeing unique keys: {exc}")
            return
        report.unique_keys_freed = freed

    def stats(self) -> QueueStats:
        """Server stats; per job type beanstalkd's counts (tubes under this queue's prefix)
        and, with a store, the store's (:class:`StoredCounts`). Of a bonded queue, the sums
        over the servers that answer, and each server's own in ``servers``."""
        job_types: dict[str, TubeStats] = {}
        for job_type in self.job_types():
            tube_stats = self._tube_stats_each(job_type)
            if tube_stats:
                job_types[job_type] = cast(TubeStats, sum_stats(tube_stats))
        stored = store = None
        if self.store is not None:
            store = self.store_counts(job_types)
            stored = {job_type: counts.records for job_type, counts in store.items()}
        servers = server_ids = None
        if len(self._conns) > 1:
            servers = self.each_server_stats()
            server_ids = sighted_at(self.store) if self.store is not None else None
        return QueueStats(
            self.server_stats(), job_types, stored, dict(self.counters), store, servers, server_ids
        )

    def store_counts(self, tubes: dict[str, TubeStats] | None = None) -> dict[str, StoredCounts]:
        """Per job type the store or beanstalkd knows: its :class:`StoredCounts` ({} without a
        store). ``tubes``: beanstalkd's stats by job type, when the caller has them.

        Fast when all is well: it reads only the records the sweeper would (those without a
        reference, those naming a server other than the one answering, and claims; the
        store's index finds them) and asks beanstalkd about those in pipelined bursts; every
        other record names the answering server and is trusted to be there, as the sweeper
        trusts it. The cost follows what is wrong plus one count per job type. Dead letters
        are beanstalkd's buried jobs plus lost records in the buried state.
        """
        if self.store is None:
            return {}
        if tubes is None:
            tubes = {t: self.tube_stats(t) for t in self.job_types()}
        tally: dict[str, Counter[str]] = {job_type: Counter() for job_type in tubes}
        live = dict(self._servers.live())
        for page in suspect_pages(self.store, set(live.values())):
            held = self._held_keys(page, live)
            for record in page:
                counts = tally.setdefault(record.job_type, Counter())
                if record.key in held:
                    continue  # in beanstalkd after all (a binlog restart renamed the server)
                counts["unscheduled" if record.ref is None else "awaiting_recovery"] += 1
                counts["dead_letters"] += record.state == "buried"
        return {
            job_type: StoredCounts(
                records=self.store.count(job_type),
                unscheduled=counts["unscheduled"],
                awaiting_recovery=counts["awaiting_recovery"],
                dead_letters=counts["dead_letters"]
                + tubes.get(job_type, {}).get("current-jobs-buried", 0),
            )
            for job_type, counts in sorted(tally.items())
        }

    def job_types(self) -> list[str]:
        """The job types beanstalkd has a tube for under this queue's prefix (one command;
        a type only the store still holds is found by :meth:`store_counts`)."""
        prefix = self.tube_prefix
        tubes = {tube for listed in self._servers.each(lambda c: c.list_tubes()) for tube in listed}
        return [t[len(prefix) :] for t in sorted(tubes) if t.startswith(prefix) and t != prefix]

    def _held_keys(
        self, records: list[JobRecord], live: dict[BeanstalkConnection, str]
    ) -> set[str]:
        """The keys among ``records`` whose job a live server holds under the id its
        reference says (in any state): one pipelined burst of peeks per server."""
        referenced = [r for r in records if r.ref is not None and not is_claim(r.ref)]
        held: set[str] = set()
        for conn in live:
            pipe = Pipeline(conn)
            peeks = [pipe.add(beanstalk_commands.peek(r.ref.job_id)) for r in referenced if r.ref]
            pipe.execute()
            for record, pending in zip(referenced, peeks, strict=True):
                found = pending.result() if pending.error is None else None
                body = decode_body(found.body) if found is not None else None
                if body is not None and body.key == record.key:
                    held.add(record.key)
        return held

    def job_stats(self, job_id: int, *, server: str | None = None) -> JobStats:
        """beanstalkd's stats-job for a job id (of a bonded queue: on the server at address
        ``server``, or the first that holds that id); JobNotFoundError if it is gone."""
        conns = self._servers.holding(job_id)
        conns = [conn for conn in conns if server in (None, conn.address)]
        stats = next((conn.stats_job(job_id) for conn in conns), None)
        if stats is None:
            raise JobNotFoundError(f"job {job_id} not in beanstalkd at {self.config.address}")
        return stats

    def each_server_stats(self) -> dict[str, ServerStats | str]:
        """Each server's stats by address, or the error of one that did not answer (of one
        server: that one)."""
        return self._servers.stats()

    def broker_state(self, ref: BrokerRef) -> str | None:
        """beanstalkd's state of the job a reference names (``ready``, ``delayed``,
        ``reserved``, ``buried``), or None: the server answering is another (it restarted,
        or was replaced) or no longer holds the job."""
        conn = next((conn for conn, sid in self._servers.live() if sid == ref.server_id), None)
        if conn is None:
            return None
        stats = conn.stats_job(ref.job_id)
        return None if stats is None else stats.get("state")

    def server_stats(self) -> ServerStats:
        """beanstalkd's stats of the server this queue talks to (of a bonded queue: summed
        over those that answer, see :func:`kqueue.servers.sum_stats`)."""
        if len(self._conns) == 1:
            return self._conn.stats()
        return cast(ServerStats, sum_stats(self._servers.each(lambda conn: conn.stats())))

    def tube_stats(self, job_type: str) -> TubeStats:
        """beanstalkd's stats-tube of a job type ({} if its tube does not exist; of a bonded
        queue: summed over the servers)."""
        each = self._tube_stats_each(job_type)
        if len(each) == 1:
            return each[0]
        return cast(TubeStats, sum_stats(each))

    def put_tube_stats(self, job_type: str) -> TubeStats:
        """:meth:`tube_stats` of the tube a type's jobs are put into: its own, or with lanes
        its lane (shared with other types: ``current-watching`` counts the lane's workers)."""
        each = self._tube_stats_each(job_type, self.config.tube_of(job_type))
        return each[0] if len(each) == 1 else cast(TubeStats, sum_stats(each))

    def _tube_stats_each(self, job_type: str, tube: str | None = None) -> list[TubeStats]:
        tube = tube or tube_for(job_type, self.tube_prefix)
        return [stats for stats in self._servers.each(lambda conn: conn.stats_tube(tube)) if stats]

    def peek_job(self, job_id: int) -> ReservedJob | None:
        """A job by beanstalkd id in any state, or None (of a bonded queue: on the first
        server holding that id; :meth:`locate` says which servers hold it)."""
        return next((found for _, found in self.locate(job_id)), None)

    def peek_ref(self, ref: BrokerRef) -> tuple[str, ReservedJob] | None:
        """The job a reference names, with the address of its server; None if no live
        server has that id or holds that job."""
        conn = next((conn for conn, sid in self._servers.live() if sid == ref.server_id), None)
        found = None if conn is None else conn.peek(ref.job_id)
        return None if conn is None or found is None else (conn.address, found)

    def locate(self, job_id: int) -> list[tuple[str, ReservedJob]]:
        """Every server (address) that holds a job of this id, with the job: ids are each
        server's own, so on a bonded queue several may."""
        return self._servers.locate(job_id)

    def peek_next(self, job_type: str, state: str) -> ReservedJob | None:
        """The next ``ready`` or ``delayed`` job, or the oldest ``buried`` one, of a type."""
        peeks: dict[str, Callable[[BeanstalkConnection], ReservedJob | None]] = {
            "ready": BeanstalkConnection.peek_ready,
            "delayed": BeanstalkConnection.peek_delayed,
            "buried": BeanstalkConnection.peek_buried,
        }
        if state not in peeks:
            raise ValidationError(f"state must be one of {sorted(peeks)}, not {state!r}")
        if self.config.lanes:
            return peek_of_type(self._conn, self.config, job_type, peeks[state])
        tube = tube_for(job_type, self.tube_prefix)
        for conn in self._conns:  # of a bonded queue: the first server that has one
            found = self._servers.each_one(conn, lambda c: peek_in(c, tube, peeks[state]))
            if found is not None:
                return found
        return None

    def delete_job(self, job_id: int) -> bool:
        """Delete a job by beanstalkd id, and its record; False if beanstalkd had not got it
        (of a bonded queue: the job of that id on the first server holding one)."""
        for conn in self._servers.holding(job_id):
            found = conn.peek(job_id)
            if found is None:
                continue
            body = decode_body(found.body)
            if body is not None and body.stored and self.store is not None:
                self.store.delete(body.key)
            return conn.delete(job_id)
        return False
