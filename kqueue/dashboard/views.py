"""What the dashboard shows, read through the public KQueue and Admin API as plain data.

Nothing here renders HTML: the templates do, with autoescaping on, so a payload is only ever
text to them. Each function reads one page's worth: the overview a page of job types, the
dead letters of a type a page of records (after a key cursor), a job by key or id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kqueue.admin import StoredCounts
from kqueue.beanstalk.wire import ReservedJob, TubeStats
from kqueue.errors import BrokerError, JobNotFoundError, KQueueError, ValidationError
from kqueue.queue import KQueue
from kqueue.serialization import decode_body
from kqueue.sightings import sighted_at
from kqueue.stores.base import JobRecord
from kqueue.sweeper import is_claim

__all__ = [
    "PAYLOAD_SHOWN",
    "SCAN_LIMIT",
    "DeadLetter",
    "DeadLetters",
    "JobView",
    "Overview",
    "ServerView",
    "TypeRow",
    "dead_letters",
    "each_server",
    "find_job",
    "overview",
    "show_payload",
    "type_row",
]

PAYLOAD_SHOWN = 4000
"""Characters of a pretty-printed payload shown; the rest is cut (the page says how much)."""

TYPES_PER_PAGE = 25
"""Job types per overview page (each costs a stats-tube and a store count: see
docs/dashboard.md for the figures)."""

SERVER_FIELDS = (
    "version",
    "uptime",
    "current-connections",
    "current-workers",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "total-jobs",
)
"""The beanstalkd stats the servers panel shows."""


EACH_SERVER_FIELDS = (
    "id",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "current-connections",
    "current-workers",
    "uptime",
)
"""The columns of the per-server table of a bonded queue's overview."""


@dataclass(frozen=True)
class TypeRow:
    """One job type's counts: beanstalkd's, and the store's (None without a store)."""

    job_type: str
    ready: int = 0
    delayed: int = 0
    reserved: int = 0
    buried: int = 0
    workers: int = 0
    suspended: bool = False
    stored: int | None = None
    unscheduled: int | None = None
    awaiting_recovery: int | None = None
    dead_letters: int | None = None


@dataclass(frozen=True)
class ServerView:
    """A beanstalkd server: its address, whether it answers, and a few of its stats."""

    address: str
    up: bool
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Overview:
    """One page of the overview: its job types, the servers and the store."""

    rows: list[TypeRow]
    servers: list[ServerView]
    store: str | None
    stored_total: int | None
    page: int
    pages: int
    total_types: int
    sweeps: list[SweepView] = field(default_factory=list)
    each_server: list[ServerView] = field(default_factory=list)
    """Of a queue over several servers: each server's own stats (``servers`` holds their
    sums), or why it did not answer and the id recovery last saw there."""
    server_columns: tuple[str, ...] = EACH_SERVER_FIELDS
    """The stats each row of :attr:`each_server` shows, in order."""


@dataclass(frozen=True)
class SweepView:
    """One recovery pass some sweeper reported: when (UTC), which process, its log line."""

    at: str
    by: str
    summary: str
    requeued: int


def recent_sweeps(queue: KQueue, limit: int = 10) -> list[SweepView]:
    """The newest recovery passes any sweeper left in the store ([] without one, or when
    the store cannot say)."""
    try:
        found = queue.admin.recent_sweeps(limit)
    except KQueueError:
        return []
    return [
        SweepView(
            _utc(float(entry.get("at", 0))),
            str(entry.get("by", "?")),
            str(entry.get("summary", "")),
            int(entry.get("requeued", 0) or 0),
        )
        for entry in found
    ]


def _row(
    job_type: str, tube: TubeStats, counts: StoredCounts | None, suspended: set[str], store: bool
) -> TypeRow:
    store_side: dict[str, int | None] = {}
    if store:
        counts = counts or StoredCounts()
        store_side = {
            "stored": counts.records,
            "unscheduled": counts.unscheduled,
            "awaiting_recovery": counts.awaiting_recovery,
            "dead_letters": counts.dead_letters,
        }
    return TypeRow(
        job_type,
        ready=tube.get("current-jobs-ready", 0),
        delayed=tube.get("current-jobs-delayed", 0),
        reserved=tube.get("current-jobs-reserved", 0),
        buried=tube.get("current-jobs-buried", 0),
        workers=tube.get("current-watching", 0),
        suspended=tube.get("pause", 0) > 0 or job_type in suspended,
        **store_side,
    )


def _page_rows(queue: KQueue, page: int, per_page: int) -> tuple[list[TypeRow], int, int, int]:
    """The rows of one page of job types, the page, the page count and the type count.

    Only the page's types are counted (stats-tube and a store count each): every job type
    is listed (beanstalkd's tubes, and the types of the records the sweeper would look at,
    which the store finds by index), but a page costs its own rows, not the queue's.
    """
    admin = queue.admin
    stale = admin.store_counts({}) if queue.store is not None else {}
    job_types = sorted(set(admin.job_types()) | set(stale))
    pages = max(1, -(-len(job_types) // per_page))
    page = min(max(page, 1), pages)
    shown = job_types[(page - 1) * per_page : page * per_page]
    tubes = {job_type: admin.tube_stats(job_type) for job_type in shown}
    counts = admin.store_counts(tubes) if queue.store is not None else {}
    suspended = queue.store.suspended() if queue.store is not None else set()
    rows = [_row(t, tubes[t], counts.get(t), suspended, queue.store is not None) for t in shown]
    return rows, page, pages, len(job_types)


def overview(queue: KQueue, page: int = 1, per_page: int = TYPES_PER_PAGE) -> Overview:
    """The overview's page ``page`` (from 1): counts per job type, servers, store.

    A beanstalkd that does not answer is shown down, with the store's record count alone.
    """
    store = repr(queue.store) if queue.store is not None else None
    stored_total = queue.store.count() if queue.store is not None else None
    try:
        server_stats: dict[str, Any] = dict(queue.admin.server_stats())
        rows, page, pages, total = _page_rows(queue, page, per_page)
    except BrokerError as exc:
        down = ServerView(queue.config.address, up=False, error=str(exc))
        return Overview([], [down], store, stored_total, 1, 1, 0, recent_sweeps(queue))
    shown = {name: server_stats.get(name) for name in SERVER_FIELDS}
    server = ServerView(queue.config.address, up=True, stats=shown)
    sweeps = recent_sweeps(queue)
    each = each_server(queue) if queue.config.bonded else []
    return Overview(rows, [server], store, stored_total, page, pages, total, sweeps, each)


def each_server(queue: KQueue) -> list[ServerView]:
    """Every server of a bonded queue: its stats, or why it did not answer (with, from the
    store's sightings, the id recovery last saw answering there: the id its jobs' records
    name)."""
    lived = {address: sid for sid, address in sorted(sighted_at(queue.store).items())}
    views = []
    for address, stats in queue.admin.each_server_stats().items():
        if isinstance(stats, str):
            last = {"id": f"last seen as {lived[address]}"} if address in lived else {}
            views.append(ServerView(address, up=False, error=stats, stats=last))
        else:
            shown = {name: stats.get(name) for name in EACH_SERVER_FIELDS}
            views.append(ServerView(address, up=True, stats=shown))
    return views


def type_row(queue: KQueue, job_type: str) -> TypeRow:
    """The counts of one job type (the store's without its recovery breakdown, which would
    cost a look at every suspect record of the queue)."""
    tube = queue.admin.tube_stats(job_type)
    suspended = queue.store.suspended() if queue.store is not None else set()
    stored = queue.store.count(job_type) if queue.store is not None else None
    return TypeRow(
        job_type,
        ready=tube.get("current-jobs-ready", 0),
        delayed=tube.get("current-jobs-delayed", 0),
        reserved=tube.get("current-jobs-reserved", 0),
        buried=tube.get("current-jobs-buried", 0),
        workers=tube.get("current-watching", 0),
        suspended=tube.get("pause", 0) > 0 or job_type in suspended,
        stored=stored,
    )


def show_payload(queue: KQueue, codec: str, payload: bytes) -> tuple[str, int]:
    """A payload as text for a page: decoded and pretty-printed (JSON), cut to
    :data:`PAYLOAD_SHOWN` characters; and how many characters were cut."""
    try:
        data = queue.codecs.decode(codec, payload)
    except KQueueError:
        data = payload
    if isinstance(data, bytes | bytearray):
        text = repr(bytes(data))
    else:
        try:
            text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            text = repr(data)
    cut = max(0, len(text) - PAYLOAD_SHOWN)
    return (text[:PAYLOAD_SHOWN], cut)


@dataclass(frozen=True)
class DeadLetter:
    """A buried job: its names (record key, beanstalkd id), failure history and payload."""

    key: str | None
    job_id: int | None
    attempts: int | None
    last_error: str | None
    payload: str
    cut: int
    updated_at: float | None = None


@dataclass(frozen=True)
class DeadLetters:
    """A page of dead letters; the key cursor of the next page (None: no more); and how many
    records were looked at for it (a page stops after :data:`SCAN_LIMIT`)."""

    jobs: list[DeadLetter]
    next_after: str | None
    from_store: bool
    scanned: int = 0


SCAN_LIMIT = 500
"""Records of a type one dead-letter page looks at, at most: a type's buried jobs are found by
reading its records in key order, so a page's cost stays bounded however many a type holds."""

SCAN_PAGE = 500


def _letter(queue: KQueue, record: JobRecord) -> DeadLetter:
    text, cut = show_payload(queue, record.codec, record.payload)
    job_id = record.ref.job_id if record.ref and not is_claim(record.ref) else None
    return DeadLetter(
        record.key, job_id, record.attempts, record.last_error, text, cut, record.updated_at
    )


def dead_letters(queue: KQueue, job_type: str, after: str | None, limit: int) -> DeadLetters:
    """Up to ``limit`` buried jobs of a type in key order after the key ``after``.

    With a store they are its records in the buried state, found by reading the type's
    records from the cursor (at most :data:`SCAN_LIMIT` of them; the cursor then says where to
    go on); without one, beanstalkd shows only its oldest buried job.
    """
    if queue.store is None:
        job = queue.admin.peek_next(job_type, "buried")
        return DeadLetters([] if job is None else [_inline_letter(queue, job)], None, False)
    jobs: list[DeadLetter] = []
    scanned = 0
    while True:
        page = queue.store.scan(after=after, limit=SCAN_PAGE, job_type=job_type)
        for record in page:
            if record.state == "buried":
                if len(jobs) == limit:
                    return DeadLetters(jobs, jobs[-1].key, True, scanned)
                jobs.append(_letter(queue, record))
            scanned += 1
            after = record.key
        if len(page) < SCAN_PAGE:
            return DeadLetters(jobs, None, True, scanned)
        if scanned >= SCAN_LIMIT:
            return DeadLetters(jobs, after, True, scanned)


def _inline_letter(queue: KQueue, job: ReservedJob) -> DeadLetter:
    body = decode_body(job.body)
    if body is None:
        return DeadLetter(None, job.id, None, None, *show_payload(queue, "raw", job.body))
    text, cut = show_payload(queue, body.codec, body.payload)
    return DeadLetter(body.key, job.id, None, None, text, cut)


@dataclass(frozen=True)
class JobView:
    """A job by record key or beanstalkd id: what beanstalkd and the store know of it."""

    key: str | None
    job_id: int | None
    state: str
    job_type: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    payload: str = ""
    cut: int = 0


def _is_key(target: str) -> bool:
    return len(target) == 32 and all(c in "0123456789abcdef" for c in target)


def find_job(queue: KQueue, target: str) -> JobView:
    """The job named by a record key (32 hex digits) or a beanstalkd id (digits).

    Raises JobNotFoundError when neither beanstalkd nor the store holds it, ValidationError
    when ``target`` is neither shape.
    """
    target = target.strip()
    if target.isdigit() and not _is_key(target):
        located = queue.admin.locate(int(target))
        if not located:
            raise JobNotFoundError(f"no job {target} in beanstalkd at {queue.config.address}")
        (server, job), also = located[0], [address for address, _ in located[1:]]
        body = decode_body(job.body)
        view = None
        if body is not None and body.stored and queue.store is not None:
            record = queue.store.get(body.key)
            if record is not None:
                view = _record_view(queue, record, job, server)
        view = view or _broker_view(queue, job, server)
        if also:
            view.fields["same id also on"] = ", ".join(also)
        return view
    if not _is_key(target):
        raise ValidationError(f"{target!r} is neither a job id (digits) nor a record key")
    if queue.store is None:
        raise ValidationError("finding a job by its key needs a store")
    record = queue.store.get(target)
    if record is None:
        raise JobNotFoundError(f"no record {target} in the store (done, or purged?)")
    holder, held = _job_of(queue, record)
    return _record_view(queue, record, held, holder)


def _job_of(queue: KQueue, record: JobRecord) -> tuple[str | None, ReservedJob | None]:
    """beanstalkd's job for a record and its server's address, if it holds it where the
    reference says (of a bonded queue, on the server the reference names)."""
    if record.ref is None or is_claim(record.ref):
        return None, None
    if queue.config.bonded:
        found = queue.admin.peek_ref(record.ref)
    else:
        job = queue.admin.peek_job(record.ref.job_id)
        found = None if job is None else (queue.config.address, job)
    body = decode_body(found[1].body) if found is not None else None
    if found is None or body is None or body.key != record.key:
        return None, None
    return found


def _state_of(queue: KQueue, job: ReservedJob, server: str | None) -> str:
    try:
        return str(queue.admin.job_stats(job.id, server=server).get("state", "?"))
    except JobNotFoundError:
        return "gone"


def _where(queue: KQueue, server: str | None) -> dict[str, Any]:
    """The field naming a job's server, on a bonded queue (ids are each server's own)."""
    return {"server": server} if queue.config.bonded else {}


def _broker_view(queue: KQueue, job: ReservedJob, server: str | None) -> JobView:
    body = decode_body(job.body)
    state = _state_of(queue, job, server)
    if body is None:
        fields = _where(queue, server)
        return JobView(None, job.id, state, None, fields, *show_payload(queue, "raw", job.body))
    fields = {**_where(queue, server), "priority": body.priority, "ttr": body.ttr}
    fields["stored"] = body.stored
    text, cut = show_payload(queue, body.codec, body.payload) if not body.stored else ("", 0)
    return JobView(body.key, job.id, state, body.job_type, fields, text, cut)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _record_view(
    queue: KQueue, record: JobRecord, job: ReservedJob | None, server: str | None
) -> JobView:
    where = _where(queue, server)
    if job is not None:
        state = _state_of(queue, job, server)
    elif record.ref is None:
        state = "accepted, not yet in beanstalkd (the sweeper delivers it)"
    else:
        state = "not in beanstalkd: awaiting recovery (a sweeper puts it back)"
        if queue.config.bonded and not is_claim(record.ref):
            last = sighted_at(queue.store).get(record.ref.server_id)
            where = {"server": f"id {record.ref.server_id}, last seen at {last or 'unknown'}"}
    fields = {
        **where,
        "priority": record.priority,
        "ttr": record.ttr,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "record_state": record.state,
        "created_at": _utc(record.created_at),
        "updated_at": _utc(record.updated_at) if record.updated_at else None,
    }
    text, cut = show_payload(queue, record.codec, record.payload)
    job_id = job.id if job is not None else None
    return JobView(record.key, job_id, state, record.job_type, fields, text, cut)
