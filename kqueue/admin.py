"""Administration of a queue: suspend and resume, purge, kick, recovery passes, statistics.

:class:`Admin` works on a beanstalkd connection of its own (purge, kick and sweep each open
one more for their walk), so it never waits behind a worker's blocking reserve.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.wire import JobStats, ReservedJob, ServerStats, TubeStats
from kqueue.config import QueueConfig
from kqueue.errors import ConfigurationError, JobNotFoundError, ValidationError
from kqueue.job import SUSPEND_SECONDS, tube_for
from kqueue.middleware.base import Middleware
from kqueue.purge import purge_tube
from kqueue.serialization import decode_body
from kqueue.stores.base import Store, iter_records
from kqueue.sweeper import Sweep, SweepReport

logger = logging.getLogger("kqueue")


@dataclass(frozen=True)
class QueueStats:
    """A snapshot: server stats, per job type tube stats, stored records, local counters."""

    server: ServerStats
    job_types: dict[str, TubeStats]
    stored: dict[str, int] | None
    counters: dict[str, int]


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
        self._conn = config.new_connection()

    def close(self) -> None:
        """Close the admin connection (a suspension outlives it: see :meth:`suspend`)."""
        self._conn.close()

    def _connection(self) -> BeanstalkConnection:
        return self.config.new_connection()

    # -- administration --------------------------------------------------------------------

    def suspend(self, job_type: str) -> None:
        """Hold every job of this type (for every worker) until resume(); adds still work.

        beanstalkd forgets an empty tube nobody watches, and its pause with it, so this queue
        keeps watching the tube (without ever reserving from it) while it is open.
        """
        tube = tube_for(job_type, self.tube_prefix)
        if self.store is not None:
            self.store.set_suspended(job_type, True)
        self._conn.watch(tube)
        self._conn.pause_tube(tube, SUSPEND_SECONDS)
        logger.info("job type %s suspended", job_type)

    def resume(self, job_type: str) -> None:
        """Deliver the jobs of a suspended type again."""
        tube = tube_for(job_type, self.tube_prefix)
        if self.store is not None:
            self.store.set_suspended(job_type, False)
        self._conn.pause_tube(tube, 0)
        self._conn.ignore(tube)
        logger.info("job type %s resumed", job_type)

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
        tube = tube_for(job_type, self.tube_prefix)
        matcher = None if pattern is None else self._payload_matcher(pattern)
        conn = self._connection()
        result = purge_tube(conn, tube, matcher, progress)
        keys = [
            body.key
            for body in map(decode_body, result.deleted_bodies)
            if body is not None and body.stored
        ]
        lost = 0
        if self.store is not None:
            if keys:
                self.store.delete_many(keys)
            lost = self._purge_lost_records(job_type, pattern)
        if result.left_reserved:
            logger.warning(
                "purge of %s left %d job(s) alone: reserved by workers",
                job_type,
                result.left_reserved,
            )
        deleted = len(result.deleted_bodies) + lost
        logger.info("purged %d job(s) of type %s", deleted, job_type)
        return deleted

    def _purge_lost_records(
        self, job_type: str, pattern: str | bytes | re.Pattern[Any] | None
    ) -> int:
        """Delete the matching records whose job beanstalkd no longer holds (lost, or never
        put), so that the sweeper cannot bring a purged job back."""
        assert self.store is not None
        matches = None if pattern is None else self._record_matcher(pattern)
        conn = self._connection()
        checker = Sweep(self.store, conn, tube_prefix=self.tube_prefix, grace=0)
        doomed: list[str] = []
        try:
            server_id = conn.stats()["id"]
            for record in iter_records(self.store, job_type=job_type):
                if matches is not None and not matches(record.payload):
                    continue
                if not checker.holds(record, server_id):
                    doomed.append(record.key)
        finally:
            conn.close()
        return self.store.delete_many(doomed) if doomed else 0

    def _payload_matcher(self, pattern: str | bytes | re.Pattern[Any]) -> Callable[[bytes], bool]:
        """Matches a job body by its payload (read from the store for references)."""
        matches = self._record_matcher(pattern)
        return lambda raw: matches(self._payload_of(raw))

    def _record_matcher(self, pattern: str | bytes | re.Pattern[Any]) -> Callable[[bytes], bool]:
        """Matches an encoded payload: str patterns see it as UTF-8 text, bytes patterns raw."""
        try:
            compiled = re.compile(pattern) if not isinstance(pattern, re.Pattern) else pattern
        except (re.error, TypeError) as exc:
            raise ValidationError(f"invalid purge pattern {pattern!r}: {exc}") from exc
        as_bytes = isinstance(compiled.pattern, bytes)

        def matches(payload: bytes) -> bool:
            subject: Any = payload if as_bytes else payload.decode("utf-8", "replace")
            return compiled.search(subject) is not None

        return matches

    def _payload_of(self, raw: bytes) -> bytes:
        body = decode_body(raw)
        if body is None:
            return raw
        if body.mode != "r" or self.store is None:
            return body.payload
        record = self.store.get(body.key)
        return record.payload if record is not None else b""

    def kick_buried(self, job_type: str, count: int | None = None) -> int:
        """Send buried jobs (dead letters) of a type back to ready, oldest first; how many.

        Each kicked job gets a fresh retry budget: its record's attempts start again at 0 and
        its state is ``enqueued`` again (so recovery would restore it ready, not buried).
        """
        tube = tube_for(job_type, self.tube_prefix)
        conn = self._connection()
        kicked = 0
        seen: set[int] = set()
        try:
            conn.use(tube)
            while count is None or kicked < count:
                found = conn.peek_buried()
                # A job a worker buried again meanwhile is not kicked twice in one call.
                if found is None or found.id in seen or not conn.kick_job(found.id):
                    break
                seen.add(found.id)
                kicked += 1
                body = decode_body(found.body)
                if body is not None and body.mode != "i" and self.store is not None:
                    self.store.record_attempt(
                        body.key, attempts=0, last_error=None, state="enqueued", now=time.time()
                    )
        finally:
            conn.close()
        logger.info("kicked %d buried job(s) of type %s", kicked, job_type)
        return kicked

    def sweep(
        self, *, grace: float | None = None, progress: Callable[[], None] | None = None
    ) -> SweepReport:
        """Run one recovery pass: re-enqueue every stored job that beanstalkd lost.

        Records younger than ``grace`` seconds (default: the queue's ``recovery_grace``) are
        left alone, since their producer may still be putting them. Safe to run from several
        processes at once. Needs a bulk store.
        """
        if self.store is None:
            raise ConfigurationError("recovery needs a bulk store: KQueue(bulk_store=...)")
        conn = self._connection()
        try:
            report = Sweep(
                self.store,
                conn,
                tube_prefix=self.tube_prefix,
                grace=self.config.recovery_grace if grace is None else grace,
                events=self.events,
            ).run(progress)
        finally:
            conn.close()
        if report.requeued or report.requeued_buried or report.errors:
            logger.warning("recovery pass: %s", report)
        return report

    def stats(self) -> QueueStats:
        """Server stats, and per job type (tubes under this queue's prefix) their counts."""
        conn = self._conn
        job_types: dict[str, TubeStats] = {}
        for tube in conn.list_tubes():
            if tube.startswith(self.tube_prefix) and len(tube) > len(self.tube_prefix):
                tube_stats = conn.stats_tube(tube)
                if tube_stats is not None:
                    job_types[tube[len(self.tube_prefix) :]] = tube_stats
        stored = None
        if self.store is not None:
            stored = {job_type: self.store.count(job_type) for job_type in job_types}
        return QueueStats(conn.stats(), job_types, stored, dict(self.counters))

    def job_stats(self, job_id: int) -> JobStats:
        """beanstalkd's stats-job for a job id; JobNotFoundError if it is gone."""
        stats = self._conn.stats_job(job_id)
        if stats is None:
            raise JobNotFoundError(f"job {job_id} not in beanstalkd at {self.config.address}")
        return stats

    def tube_stats(self, job_type: str) -> TubeStats:
        """beanstalkd's stats-tube of a job type ({} if its tube does not exist)."""
        return self._conn.stats_tube(tube_for(job_type, self.tube_prefix)) or {}

    def peek_job(self, job_id: int) -> ReservedJob | None:
        """A job by beanstalkd id in any state, or None."""
        return self._conn.peek(job_id)

    def peek_next(self, job_type: str, state: str) -> ReservedJob | None:
        """The next ``ready`` or ``delayed`` job, or the oldest ``buried`` one, of a type."""
        peeks = {
            "ready": self._conn.peek_ready,
            "delayed": self._conn.peek_delayed,
            "buried": self._conn.peek_buried,
        }
        if state not in peeks:
            raise ValidationError(f"state must be one of {sorted(peeks)}, not {state!r}")
        self._conn.use(tube_for(job_type, self.tube_prefix))
        return peeks[state]()

    def delete_job(self, job_id: int) -> bool:
        """Delete a job by beanstalkd id, and its record; False if beanstalkd had not got it."""
        found = self._conn.peek(job_id)
        if found is None:
            return False
        body = decode_body(found.body)
        if body is not None and body.stored and self.store is not None:
            self.store.delete(body.key)
        return self._conn.delete(job_id)
