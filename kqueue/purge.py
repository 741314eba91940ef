"""Purge: delete the waiting jobs of one tube whose payload matches a pattern.

beanstalkd cannot list a tube, so purge walks it with peek and ``reserve-job`` on a connection
of its own: each ready, delayed and buried job is taken, matched, and either deleted or put back
as it was (same priority; delayed jobs with their remaining delay rounded up, so never early;
buried jobs buried again). Jobs reserved by workers are never touched. If anything fails half
way, closing the connection hands every job it holds back to beanstalkd (as ready).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline
from kqueue.beanstalk.wire import JobStats, ReservedJob
from kqueue.errors import ValidationError
from kqueue.serialization import decode_body
from kqueue.stores.base import Store

logger = logging.getLogger("kqueue")

Matcher = Callable[[bytes], bool]
"""Decides from a job body whether the job is purged."""

Pattern = str | bytes | re.Pattern[Any]
"""What a purge searches (``re.search``) in an encoded payload."""


def record_matcher(pattern: Pattern) -> Callable[[bytes], bool]:
    """Matches an encoded payload: str patterns see it as UTF-8 text, bytes patterns raw
    (an invalid pattern: ValidationError)."""
    try:
        compiled = re.compile(pattern) if not isinstance(pattern, re.Pattern) else pattern
    except (re.error, TypeError) as exc:
        raise ValidationError(f"invalid purge pattern {pattern!r}: {exc}") from exc
    as_bytes = isinstance(compiled.pattern, bytes)

    def matches(payload: bytes) -> bool:
        subject: Any = payload if as_bytes else payload.decode("utf-8", "replace")
        return compiled.search(subject) is not None

    return matches


def payload_matcher(pattern: Pattern, store: Store | None) -> Matcher:
    """Matches a job body by its payload (read from ``store`` for references)."""
    matches = record_matcher(pattern)
    return lambda raw: matches(_payload_of(raw, store))


def _payload_of(raw: bytes, store: Store | None) -> bytes:
    body = decode_body(raw)
    if body is None:
        return raw
    if body.mode != "r" or store is None:
        return body.payload
    record = store.get(body.key)
    return record.payload if record is not None else b""


@dataclass
class PurgeResult:
    """What a purge did: deleted job bodies, and reserved jobs it had to leave alone."""

    deleted_bodies: list[bytes] = field(default_factory=list)
    left_reserved: int = 0


@dataclass(frozen=True)
class _Held:
    state: str
    priority: int
    delay: int


class _Holding:
    """The jobs purge holds reserved (kept, to be put back), touched before their TTR ends:
    a held delayed job or dead letter whose TTR ran out would come back *ready*."""

    def __init__(self) -> None:
        self.jobs: dict[int, _Held] = {}
        self._shortest_ttr = float("inf")
        self._touched = 0.0

    def __contains__(self, job_id: int) -> bool:
        return job_id in self.jobs

    def add(self, job_id: int, held: _Held, ttr: int, reserved_at: float) -> None:
        # The clock of the oldest untouched hold starts at its reserve, not now: matching the
        # payload (a store read) took some of its TTR already.
        self._touched = reserved_at if not self.jobs else min(self._touched, reserved_at)
        self.jobs[job_id] = held
        self._shortest_ttr = min(self._shortest_ttr, max(1, ttr))

    def keep_alive(self, conn: BeanstalkConnection) -> None:
        """Touch every held job once a third of the shortest TTR has gone by."""
        if self.jobs and time.monotonic() - self._touched > self._shortest_ttr / 3:
            with Pipeline(conn) as pipe:
                for job_id in self.jobs:
                    pipe.touch(job_id)
            self._touched = time.monotonic()


Progress = Callable[[], None]


def purge_tube(
    conn: BeanstalkConnection,
    tube: str,
    matches: Matcher | None,
    progress: Progress | None = None,
) -> PurgeResult:
    """Delete every ready, delayed and buried job of ``tube`` whose body ``matches`` (None: all).

    ``progress`` is called once per job looked at.
    """
    result = PurgeResult()
    conn.use(tube)
    before = conn.stats_tube(tube)
    if before is None:
        return result
    held = _Holding()
    try:
        budget = 4 * before.get("total-jobs", 0) + 1000
        for state, peek in (
            ("ready", conn.peek_ready),
            ("delayed", conn.peek_delayed),
            ("buried", conn.peek_buried),
        ):
            budget = _walk(conn, state, peek, matches, held, result, budget, progress)
        _put_back(conn, held)
        after = conn.stats_tube(tube) or {}
        result.left_reserved = after.get("current-jobs-reserved", 0)
    finally:
        conn.close()  # hands back anything still held if _put_back did not finish
    return result


def _walk(
    conn: BeanstalkConnection,
    state: str,
    peek: Callable[[], ReservedJob | None],
    matches: Matcher | None,
    held: _Holding,
    result: PurgeResult,
    budget: int,
    progress: Progress | None,
) -> int:
    while budget > 0:
        budget -= 1
        held.keep_alive(conn)
        found = peek()
        if found is None:
            break
        if progress is not None:
            progress()
        if matches is None:
            if conn.delete(found.id):
                result.deleted_bodies.append(found.body)
            continue
        stats = conn.stats_job(found.id)
        reserved_at = time.monotonic()
        taken = conn.reserve_job(found.id) if stats is not None else None
        if stats is None or taken is None:
            continue  # a worker got it between peek and reserve-job
        if found.id in held:
            continue  # its hold timed out (TTR) and it came back: keep holding it
        if matches(taken.body):
            conn.delete(taken.id)
            result.deleted_bodies.append(taken.body)
        else:
            kept = _Held(state, stats.get("pri", 0), _delay_left(state, stats))
            held.add(taken.id, kept, stats.get("ttr", 1), reserved_at)
    return budget


def _delay_left(state: str, stats: JobStats) -> int:
    if state != "delayed":
        return 0
    # time-left is truncated to whole seconds: add one so a postdated job never runs early.
    return stats.get("time-left", 0) + 1


def _put_back(conn: BeanstalkConnection, held: _Holding) -> None:
    held.keep_alive(conn)
    with Pipeline(conn) as pipe:  # one burst: no held job can time out half way
        for job_id, hold in held.jobs.items():
            if hold.state == "buried":
                pipe.bury(job_id, priority=hold.priority)
            else:
                pipe.release(job_id, priority=hold.priority, delay=hold.delay)
    held.jobs.clear()
