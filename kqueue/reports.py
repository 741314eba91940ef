"""What administration reports: a queue's counts (:class:`QueueStats`, per job type
:class:`StoredCounts`), the records a recovery pass looks at, a pass's summary line, and the
pass reports kept in the store for operators."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kqueue.beanstalk.wire import ServerStats, TubeStats
from kqueue.errors import KQueueError
from kqueue.stores.base import JobRecord, Store

if TYPE_CHECKING:
    from kqueue.sweeper import SweepReport

logger = logging.getLogger("kqueue")

__all__ = [
    "QueueStats",
    "StoredCounts",
    "keep_sweep_report",
    "recent_sweep_reports",
    "suspect_pages",
    "sweep_advice",
    "sweep_fields",
    "sweep_summary",
]


@dataclass(frozen=True)
class StoredCounts:
    """What the store holds of one job type, checked against beanstalkd.

    ``records``: every stored job. ``unscheduled``: accepted but never put into beanstalkd
    (it was down when they were added, or their producer died in between).
    ``awaiting_recovery``: put once, but beanstalkd no longer holds them (it was killed or
    restarted empty), or a sweeper is putting them back right now. ``dead_letters``: buried
    after their retry budget. The sweeper delivers the unscheduled and the awaiting ones.
    """

    records: int = 0
    unscheduled: int = 0
    awaiting_recovery: int = 0
    dead_letters: int = 0


@dataclass(frozen=True)
class QueueStats:
    """A snapshot: server stats, per job type tube stats, stored records, local counters.

    ``job_types`` holds beanstalkd's tubes under this queue's prefix; ``store`` (None without
    a store) every job type the store knows, whether or not beanstalkd has a tube for it;
    ``stored`` is its record count per type. :attr:`all_job_types` is the union.
    """

    server: ServerStats
    job_types: dict[str, TubeStats]
    stored: dict[str, int] | None
    counters: dict[str, int]
    store: dict[str, StoredCounts] | None = None
    servers: dict[str, ServerStats | str] | None = None
    """Of a bonded queue: each server's stats by address (or why it did not answer);
    ``server`` and ``job_types`` then hold their sums (see :func:`kqueue.servers.sum_stats`)."""
    server_ids: dict[str, str] | None = None
    """Of a bonded queue with a store: every server id recovery passes saw answering, with
    the address it was last seen at (see :mod:`kqueue.sightings`); the records' references
    name these ids."""

    @property
    def all_job_types(self) -> list[str]:
        """Every job type beanstalkd or the store knows, sorted."""
        return sorted(set(self.job_types) | set(self.store or ()))


def suspect_pages(
    store: Store, server_ids: set[str], page_size: int = 500
) -> Iterator[list[JobRecord]]:
    """The records a sweeper would look at, a page at a time: without a reference, naming a
    server other than those of ``server_ids`` (gone, or renamed by a binlog restart), or
    claimed."""
    for server in [None, *sorted(store.referenced_servers() - server_ids)]:
        after: str | None = None
        while True:
            page = store.scan_referencing(server, after=after, limit=page_size)
            if page:
                yield page
            if len(page) < page_size:
                break
            after = page[-1].key


def sweep_summary(report: SweepReport) -> str:
    """One line for a log: a pass's counts that are not zero, and the time it took."""
    counts = {
        name: value
        for name, value in vars(report).items()
        if isinstance(value, int) and not isinstance(value, bool) and value and name != "scanned"
    }
    shown = ", ".join(f"{name} {value}" for name, value in counts.items())
    errors = f", {len(report.errors)} error(s)" if report.errors else ""
    return (
        f"recovery pass: scanned {report.scanned}{': ' + shown if shown else ''}{errors} "
        f"in {report.seconds:.2f} s"
    )


def sweep_advice(report: SweepReport, grace: float) -> str | None:
    """Why a pass put nothing back although it left records alone, and what to do; or None.

    Only records that never got a beanstalkd reference wait out the grace period (their
    producers may be between the store write and the put); the jobs a restarted broker lost
    are put back at once, whatever their age.
    """
    if not report.young or report.requeued or report.requeued_buried:
        return None
    return (
        f"{report.young} record(s) accepted less than {grace:g} s ago and not yet in "
        f"beanstalkd were left to their producers: a pass after {grace:g} s puts back any "
        "still missing (a running sweeper does it by itself); --grace 0 does it now, at the "
        "risk of a second copy of a job whose producer is still putting it"
    )


def sweep_fields(report: SweepReport) -> dict[str, object]:
    """The structured fields of a recovery pass's log line (for JSON logs)."""
    return {
        "outcome": "swept",
        "server": report.server_id,
        "duration_ms": round(report.seconds * 1000, 3),
        "scanned": report.scanned,
        "requeued": report.requeued + report.requeued_buried,
        "young": report.young,
    }


def keep_sweep_report(store: Store, report: SweepReport, by: str) -> None:
    """Leave a pass's report (run ``by`` host:pid) in the store for operators (the
    dashboard, any process); a store that cannot take it costs a log line, never the pass."""
    fields = {"by": by, "summary": sweep_summary(report), **sweep_fields(report)}
    try:
        store.record_sweep(json.dumps(fields, default=str), at=time.time())
    except KQueueError as exc:
        logger.warning("recovery pass report not kept in the store: %s", exc)


def recent_sweep_reports(store: Store, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` pass reports kept in the store, newest first, each a dict with
    ``at`` (Unix seconds) and what :func:`keep_sweep_report` kept (a report that is not
    JSON: its text as the ``summary``)."""
    found = []
    for at, text in store.recent_sweeps(limit):
        try:
            fields = json.loads(text)
        except ValueError:
            fields = {"summary": text}
        found.append({"at": at, **(fields if isinstance(fields, dict) else {})})
    return found
