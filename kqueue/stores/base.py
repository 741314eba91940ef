"""The bulk store contract: what a write-ahead store must do for the queue and for recovery.

A :class:`JobRecord` is written durably before beanstalkd sees a reference to it; the store is
the source of truth. Every store implements :class:`Store` and passes the shared contract suite
(tests/contract); :class:`~kqueue.stores.memory.MemoryStore` is the reference implementation.

Rules every implementation follows:

- ``put``/``put_many`` return only once the records are durable (as durable as the backend is).
  A key that already exists raises :class:`~kqueue.errors.StoreError` and writes nothing.
- Methods that address one record by key return ``False``/``None`` when it does not exist;
  they never raise for a missing record.
- ``swap_reference`` (and ``swap_references``, its batch) is a compare-and-set: it changes the
  broker reference only when the current one equals ``expected``. It is what lets several
  sweepers run at once without double puts.
- ``scan`` returns records in ascending key order, at most ``limit`` of them, strictly after
  ``after``: recovery pages through a large store in bounded memory.
- ``referenced_servers`` and ``scan_referencing`` read an index of records by the server their
  reference names (no reference: ``None``), so that a recovery pass looks only at the records
  of servers that are gone, at claims and at records never scheduled: its cost follows what is
  wrong, not how many jobs wait.
- ``scan_unscheduled`` reads an index of the records without a reference by ``updated_at``,
  so that recovery asks only for those accepted longer ago than its grace period: the
  records a producer is still putting (young) cost a pass nothing.
- ``put_unique`` writes new records that claim unique keys, deciding atomically for each
  whether its key is free: a key is held while the job holding it waits (``finish``: until its
  record is deleted; ``start``: until a worker starts it, see ``release_unique``) or until its
  expiry time (``expiry``: whatever happened to the job). A record whose key is held is not
  written; the key of the record that holds it is returned instead.
- ``record_failure`` is ``record_attempt`` plus one :class:`AttemptFailure` appended to the
  record's failure history, in one atomic write, keeping the last :data:`MAX_FAILURES`; the
  history lives and dies with the record (recovery re-enqueues a record, so it keeps it).
- ``put_result`` keeps a job's outcome (:class:`StoredResult`) under its key, apart from the
  record, until its ``expires_at``; ``get_result`` never returns an expired one.
- ``record_sweep`` keeps a recovery pass's report (JSON text), the newest :data:`SWEEPS_KEPT`;
  ``recent_sweeps`` reads them newest first (what every sweeper sharing the store did).
- ``note_servers`` keeps, for each beanstalkd server id a recovery pass saw answering, its
  address and when (:class:`ServerSighting`, the last write winning); ``servers_seen`` reads
  them all, ``forget_servers`` drops some. A sweeper started while a server is down learns
  from them that the server's id lived at an address that is down for now, not gone.
- Driver errors become :class:`~kqueue.errors.StoreError` (or a child) with the cause chained;
  credentials never appear in messages or reprs.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from kqueue.errors import StoreError

_StoreT = TypeVar("_StoreT", bound="StoreBase")

RecordState = Literal["enqueued", "buried"]
"""``enqueued``: beanstalkd should hold the job (ready, delayed or reserved); ``buried``: it
was buried as a dead letter after its retry budget."""


class BrokerRef(NamedTuple):
    """Where beanstalkd holds a job: the server's ``id`` (from stats) and the job id.

    A beanstalkd restarted without a binlog reuses job ids from 1, so a job id alone never
    identifies a job: the server id tells one process lifetime from the next. (Named tuples
    here and in :class:`RecordStatus`: workers build one per job.)
    """

    server_id: str
    job_id: int


class ServerSighting(NamedTuple):
    """Where a beanstalkd server id was last seen answering: its ``host:port`` address and
    when (Unix seconds). Kept by recovery passes (see ``Store.note_servers``)."""

    address: str
    seen_at: float


@dataclass(frozen=True)
class JobRecord:
    """One job as the store keeps it.

    ``ref`` is ``None`` until the reference has been put into beanstalkd (a pending record:
    the producer may have died between the two writes, and recovery will deliver it).
    Times are Unix seconds (float).
    """

    key: str
    job_type: str
    payload: bytes
    codec: str
    priority: int
    delay: float
    ttr: int
    created_at: float
    attempts: int = 0
    last_error: str | None = None
    ref: BrokerRef | None = None
    state: RecordState = "enqueued"
    updated_at: float = 0.0
    unique_until_start: str | None = None
    """The unique key this job holds until a worker starts it (released by the worker through
    :meth:`Store.release_unique`); None for every other job."""


_NEW_RECORD_DEFAULTS = {
    "attempts": 0,
    "last_error": None,
    "ref": None,
    "state": "enqueued",
    "unique_until_start": None,
}

UniqueUntil = Literal["finish", "start", "expiry"]
"""How long a unique key stays held: ``finish`` while the record of its job exists (done,
purged or deleted: released); ``start`` until a worker starts the job (or its record goes);
``expiry`` until the claim's ``expires_at``, whatever happened to the job."""

MAX_UNIQUE_KEY_LENGTH = 200
"""The longest unique key a store must take (characters)."""


class UniqueClaim(NamedTuple):
    """The unique key a new record claims in :meth:`Store.put_unique`, and for how long."""

    unique_key: str
    until: UniqueUntil = "finish"
    expires_at: float | None = None
    """Unix seconds; set exactly when ``until`` is ``expiry``."""


def unique_key_held(claim: UniqueClaim, *, record_exists: bool, now: float) -> bool:
    """Whether a stored claim still holds its key at ``now`` (the rule every store applies)."""
    if claim.until == "expiry":
        return claim.expires_at is not None and claim.expires_at > now
    return record_exists


def check_claims(records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None]) -> None:
    """The arguments of put_unique are consistent, or StoreError before anything is written."""
    if len(records) != len(claims):
        raise StoreError("put_unique needs one claim (or None) per record; nothing was written")
    keys = [claim.unique_key for claim in claims if claim is not None]
    if len(set(keys)) != len(keys):
        raise StoreError("put_unique got the same unique key twice; nothing was written")
    for claim in claims:
        if claim is not None and (claim.until == "expiry") != (claim.expires_at is not None):
            raise StoreError("a unique claim has an expiry time exactly when it expires")


def new_record(
    key: str,
    job_type: str,
    payload: bytes,
    codec: str,
    *,
    priority: int,
    delay: float,
    ttr: int,
    now: float,
) -> JobRecord:
    """A new record (no attempt, no reference, created and updated ``now``): the same as
    calling :class:`JobRecord`, built by filling the instance's ``__dict__`` at once instead
    of a frozen dataclass's ``object.__setattr__`` per field (the producer builds one record
    per job; the gain is in docs/performance.md)."""
    record: JobRecord = object.__new__(JobRecord)
    record.__dict__.update(
        _NEW_RECORD_DEFAULTS,
        key=key,
        job_type=job_type,
        payload=payload,
        codec=codec,
        priority=priority,
        delay=delay,
        ttr=ttr,
        created_at=now,
        updated_at=now,
    )
    return record


class RecordStatus(NamedTuple):
    """What a worker must know of a record before running a job whose payload it already has:
    that the record exists (it is returned at all), its attempts so far, its reference and
    its state. :meth:`Store.get_status_many` reads it without the payload."""

    attempts: int
    state: RecordState
    ref: BrokerRef | None


SWEEPS_KEPT = 20
"""How many recovery pass reports a store keeps (the newest)."""

UnscheduledCursor = tuple[float, str]
"""Where a page of :meth:`Store.scan_unscheduled` ended: ``(updated_at, key)`` of its last
record."""

RefSwap = tuple[str, "BrokerRef | None", "BrokerRef | None"]
"""One compare-and-set of :meth:`Store.swap_references`: (key, expected, new)."""

MAX_FAILURES = 10
"""How many failed attempts a record's history keeps (the newest)."""

ResultOutcome = Literal["done", "failed"]


@dataclass(frozen=True)
class AttemptFailure:
    """One failed attempt of a job, as its record's history keeps it.

    ``at`` is Unix seconds, ``worker`` the ``host:pid`` that ran it, ``error_type`` the
    exception's qualified name, ``traceback`` the end of its traceback (trimmed).
    """

    at: float
    attempt: int
    worker: str
    error_type: str
    message: str
    traceback: str = ""


def encode_failures(failures: Sequence[AttemptFailure]) -> str:
    """A failure history as the stores keep it: a JSON list of objects, oldest first (ASCII
    only: any message or traceback goes through any backend's text column unchanged)."""
    return json.dumps([asdict(failure) for failure in failures])


def decode_failures(text: str | bytes | None) -> list[AttemptFailure]:
    """The history :func:`encode_failures` wrote ([] for none or an unreadable one)."""
    if not text:
        return []
    try:
        items = json.loads(text)
        return [AttemptFailure(**item) for item in items]
    except (ValueError, TypeError):
        return []


def append_failure(
    text: str | bytes | None, failure: AttemptFailure, keep: int = MAX_FAILURES
) -> str:
    """The encoded history with ``failure`` appended, keeping the newest ``keep``."""
    return encode_failures([*decode_failures(text), failure][-keep:])


class StoredResult(NamedTuple):
    """A finished job's outcome, kept apart from its record: ``done`` with the handler's
    return value encoded by ``codec``, or ``failed`` with the JSON of its last
    :class:`AttemptFailure`; kept until ``expires_at`` (Unix seconds)."""

    outcome: ResultOutcome
    payload: bytes
    codec: str
    finished_at: float
    expires_at: float


@runtime_checkable
class Store(Protocol):
    """A durable home for job records. See the module docstring for the rules."""

    def put(self, record: JobRecord) -> None:
        """Write a new record durably."""

    def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records in one round trip, all or none."""

    def get(self, key: str) -> JobRecord | None:
        """The record with this key, or None."""

    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The records that exist among ``keys``, by key, in one round trip."""

    def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """The status of the records that exist among ``keys``, by key, in one round trip.

        Cheaper than :meth:`get_many` (no payload travels): what a worker asks for a window
        of jobs whose payloads came inline, to drop those whose record is gone.
        """

    def delete(self, key: str) -> bool:
        """Remove a record; True if it existed."""

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove several records in one round trip; the number that existed."""

    def swap_reference(
        self, key: str, expected: BrokerRef | None, new: BrokerRef | None, *, now: float
    ) -> bool:
        """Set the broker reference to ``new`` if it currently equals ``expected``.

        Also sets ``updated_at`` to ``now``; the state is left alone (only
        :meth:`record_attempt` changes it). False when the record is gone or its reference
        differs (another producer or sweeper got there first).
        """

    def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """Apply :meth:`swap_reference` to each ``(key, expected, new)`` in one round trip.

        Each swap succeeds or fails on its own (there is no all-or-none); the number that
        succeeded. A producer uses it to record the job ids of a whole batch at once.
        """

    def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """Store the attempt count, last error and state after a failure; False if gone."""

    def record_failure(
        self,
        key: str,
        failure: AttemptFailure,
        *,
        attempts: int,
        last_error: str | None,
        state: RecordState,
        now: float,
    ) -> bool:
        """:meth:`record_attempt`, and ``failure`` appended to the record's history (the
        newest :data:`MAX_FAILURES` kept), in one atomic write; False if the record is gone."""

    def get_failures(self, key: str) -> list[AttemptFailure]:
        """The record's failure history, oldest first ([] when none or no such record)."""

    def put_result(self, key: str, result: StoredResult) -> None:
        """Keep a job's outcome under its key until ``result.expires_at``, replacing one
        kept before (a job run twice keeps its last outcome)."""

    def get_result(self, key: str, *, now: float) -> StoredResult | None:
        """The outcome kept under ``key``, or None (none kept, or expired by ``now``)."""

    def scan(
        self, *, after: str | None = None, limit: int = 500, job_type: str | None = None
    ) -> list[JobRecord]:
        """Up to ``limit`` records with key > ``after`` in ascending key order."""

    def count(self, job_type: str | None = None) -> int:
        """How many records are stored (of one job type, or all)."""

    def referenced_servers(self) -> set[str]:
        """Every server id that at least one record's reference names (claims included).

        Read from an index: it costs the number of distinct servers, not of records.
        """

    def scan_referencing(
        self, server_id: str | None, *, after: str | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Up to ``limit`` records whose reference names ``server_id`` (None: records without
        a reference), with key > ``after``, in ascending key order, read from an index."""

    def scan_unscheduled(
        self, *, before: float, after: UnscheduledCursor | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Up to ``limit`` records without a reference whose ``updated_at`` is earlier than
        ``before``, in ``(updated_at, key)`` order, strictly after ``after`` (the cursor of
        the previous page's last record), read from an index by time: the cost follows how
        many such records there are, not how many records are younger or scheduled."""

    def count_unscheduled(self, *, since: float | None = None) -> int:
        """How many records have no reference (of them, with ``since``, those whose
        ``updated_at`` is ``since`` or later), counted in the index by time without reading
        them: what a recovery pass reports as left to their producers."""

    def put_unique(
        self, records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None], *, now: float
    ) -> list[str | None]:
        """Write new records, each claiming a unique key (or None: none), in one atomic step.

        For each record, in order: None when it was written (its claim now holds the key),
        else the key of the record holding its unique key (held as :func:`unique_key_held`
        says at ``now``), and this record is not written. A claim that no longer holds its
        key is replaced. Unique keys within one call are distinct; a record key that exists
        raises :class:`~kqueue.errors.StoreError` and writes nothing, as in :meth:`put_many`.
        """

    def release_unique(self, holds: Sequence[tuple[str, str]]) -> int:
        """Release unique keys, each ``(unique_key, record_key)`` only while that record holds
        it (a worker starting a job held ``until="start"``); how many were released."""

    def prune_unique(
        self, *, now: float, after: str | None = None, limit: int = 1000
    ) -> tuple[int, str | None]:
        """Delete the stored claims that no longer hold their key at ``now`` (their job gone,
        or their time passed), looking at up to ``limit`` claims in unique key order after
        ``after``: (how many were deleted, the last unique key looked at, None when no claim
        is left after it). Housekeeping only: a claim that no longer holds its key never
        blocks an add, but it takes room until deleted (a recovery pass calls this).
        """

    def record_sweep(self, report: str, *, at: float) -> None:
        """Keep one recovery pass's report (JSON text) beside the records, the newest
        :data:`SWEEPS_KEPT` of them, so that operators see what every sweeper did."""

    def recent_sweeps(self, limit: int = SWEEPS_KEPT) -> list[tuple[float, str]]:
        """The newest kept sweep reports, newest first: (when, report)."""

    def note_servers(self, sightings: Mapping[str, ServerSighting]) -> None:
        """Remember, for each server id, the address it answered at and when (overwriting)."""

    def servers_seen(self) -> dict[str, ServerSighting]:
        """Every server id remembered by :meth:`note_servers`, with its sighting."""

    def forget_servers(self, server_ids: Iterable[str]) -> int:
        """Drop the sightings of these server ids; how many there were."""

    def set_suspended(self, job_type: str, suspended: bool) -> None:
        """Remember that a job type is suspended (or no longer), across broker restarts."""

    def suspended(self) -> set[str]:
        """The job types currently marked suspended."""

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""


class StoreBase:
    """What every store derives from its batch methods, so an implementation writes only those.

    A subclass implements ``put_many``, ``get_many``, ``delete_many`` and ``swap_references``
    (and the rest of :class:`Store`); the single-record methods below are each one of those
    calls with one item, and ``get_status_many`` reads whole records unless overridden (a
    store that can skip the payload should). A store is also a context manager that closes
    itself on exit.
    """

    def put_many(self, records: Sequence[JobRecord]) -> None:
        raise NotImplementedError

    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        raise NotImplementedError

    def delete_many(self, keys: Iterable[str]) -> int:
        raise NotImplementedError

    def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        raise NotImplementedError

    def scan(
        self, *, after: str | None = None, limit: int = 500, job_type: str | None = None
    ) -> list[JobRecord]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""

    def referenced_servers(self) -> set[str]:
        """Every server id a reference names. This fallback reads every record (the built-in
        stores keep an index instead; a third-party store should too)."""
        return {
            record.ref.server_id
            for record in iter_records(self)  # type: ignore[arg-type]
            if record.ref is not None
        }

    def scan_referencing(
        self, server_id: str | None, *, after: str | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records whose reference names ``server_id``. This fallback filters every record
        after ``after`` (the built-in stores read an index instead)."""
        found: list[JobRecord] = []
        while len(found) < limit:
            page = self.scan(after=after, limit=500)
            for record in page:
                on = None if record.ref is None else record.ref.server_id
                if on == server_id and len(found) < limit:
                    found.append(record)
            if len(page) < 500:
                break
            after = page[-1].key
        return found

    def scan_unscheduled(
        self, *, before: float, after: UnscheduledCursor | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records without a reference written before ``before``. This fallback reads every
        record without a reference (the built-in stores read an index by time instead)."""
        due: list[JobRecord] = []
        page_after: str | None = None
        while True:
            page = self.scan_referencing(None, after=page_after, limit=500)
            due += [record for record in page if _unscheduled_due(record, before, after)]
            due = heapq.nsmallest(limit, due, key=unscheduled_cursor)
            if len(page) < 500:
                return due
            page_after = page[-1].key

    def count_unscheduled(self, *, since: float | None = None) -> int:
        """Records without a reference (written ``since`` or later). This fallback reads
        every record without a reference."""
        count, after = 0, None
        while True:
            page = self.scan_referencing(None, after=after, limit=500)
            count += sum(1 for r in page if since is None or r.updated_at >= since)
            if len(page) < 500:
                return count
            after = page[-1].key

    def put_unique(
        self, records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None], *, now: float
    ) -> list[str | None]:
        """Unique keys need a store that decides them atomically: this fallback refuses
        (a third-party store written before them still serves every other add)."""
        raise StoreError(f"{type(self).__name__} does not support unique keys; nothing was written")

    def release_unique(self, holds: Sequence[tuple[str, str]]) -> int:
        """A store without unique keys holds none: nothing to release."""
        return 0

    def prune_unique(
        self, *, now: float, after: str | None = None, limit: int = 1000
    ) -> tuple[int, str | None]:
        """A store without unique keys holds no claims: nothing to delete."""
        return 0, None

    def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        raise NotImplementedError

    def record_failure(
        self,
        key: str,
        failure: AttemptFailure,
        *,
        attempts: int,
        last_error: str | None,
        state: RecordState,
        now: float,
    ) -> bool:
        """:meth:`record_attempt` alone: this fallback keeps no history (the built-in stores
        do; a third-party store should override it and :meth:`get_failures`)."""
        return self.record_attempt(
            key, attempts=attempts, last_error=last_error, state=state, now=now
        )

    def get_failures(self, key: str) -> list[AttemptFailure]:
        """No history is kept by the fallback: []."""
        return []

    def put_result(self, key: str, result: StoredResult) -> None:
        """The fallback keeps no results: :class:`~kqueue.errors.StoreError`."""
        raise StoreError(f"{type(self).__name__} cannot keep job results")

    def get_result(self, key: str, *, now: float) -> StoredResult | None:
        """The fallback keeps no results: None."""
        return None

    def record_sweep(self, report: str, *, at: float) -> None:
        """The fallback keeps no sweep reports."""

    def recent_sweeps(self, limit: int = 20) -> list[tuple[float, str]]:
        """The fallback keeps no sweep reports: []."""
        return []

    def note_servers(self, sightings: Mapping[str, ServerSighting]) -> None:
        """The fallback keeps no server sightings."""

    def servers_seen(self) -> dict[str, ServerSighting]:
        """The fallback keeps no server sightings: {}."""
        return {}

    def forget_servers(self, server_ids: Iterable[str]) -> int:
        """The fallback keeps no server sightings: 0."""
        return 0

    def put(self, record: JobRecord) -> None:
        """Write a new record; :class:`~kqueue.errors.StoreError` if the key exists."""
        self.put_many([record])

    def get(self, key: str) -> JobRecord | None:
        """The record with this key, or None."""
        return self.get_many([key]).get(key)

    def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """The status of the records that exist among ``keys``, by key."""
        return {
            key: RecordStatus(record.attempts, record.state, record.ref)
            for key, record in self.get_many(keys).items()
        }

    def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        """What a worker reads for jobs whose payload came inline (see :func:`read_checked`).
        This fallback takes two round trips when a record does not vouch for its copy
        (:func:`read_checked_in_two`); a store that can answer in one should."""
        return read_checked_in_two(self, expected)  # type: ignore[arg-type]

    def delete(self, key: str) -> bool:
        """Remove a record; True if it existed."""
        return self.delete_many([key]) == 1

    def swap_reference(
        self, key: str, expected: BrokerRef | None, new: BrokerRef | None, *, now: float
    ) -> bool:
        """Compare-and-set one broker reference; see :meth:`Store.swap_reference`."""
        return self.swap_references([(key, expected, new)], now=now) == 1

    def __enter__(self: _StoreT) -> _StoreT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def unscheduled_cursor(record: JobRecord) -> UnscheduledCursor:
    """The place of a record in :meth:`Store.scan_unscheduled`'s order."""
    return record.updated_at, record.key


def _unscheduled_due(record: JobRecord, before: float, after: UnscheduledCursor | None) -> bool:
    if record.ref is not None or record.updated_at >= before:
        return False
    return after is None or unscheduled_cursor(record) > after


def iter_records(
    store: Store, *, job_type: str | None = None, page_size: int = 500
) -> Iterator[JobRecord]:
    """Every record of ``store`` (of one job type, or all) in key order, a page at a time:
    memory stays bounded by ``page_size`` however large the store is."""
    after: str | None = None
    while True:
        page = store.scan(after=after, limit=page_size, job_type=job_type)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1].key


def read_checked(
    store: Store, expected: Sequence[tuple[str, BrokerRef]]
) -> dict[str, JobRecord | RecordStatus]:
    """What a worker reads for jobs whose payload came inline: per ``(key, reference)`` (the
    job the worker holds), the status of a record that names that reference, the whole
    record of one that names another or none (a copy its record does not vouch for runs the
    record's payload, see :func:`kqueue.runner.doubtful_copies`); nothing for a record that
    is gone. A key given twice is checked against its first reference. One round trip on a
    store with ``get_checked_many`` that answers in one (Redis); else
    :func:`read_checked_in_two`."""
    checked = getattr(store, "get_checked_many", None)
    if checked is None:
        return read_checked_in_two(store, expected)
    found: dict[str, JobRecord | RecordStatus] = checked(expected)
    return found


def read_checked_in_two(
    store: Store, expected: Sequence[tuple[str, BrokerRef]]
) -> dict[str, JobRecord | RecordStatus]:
    """:func:`read_checked` from the statuses, then the whole records of those that do not
    name their reference (a second round trip, for those only)."""
    refs: dict[str, BrokerRef] = {}
    for key, ref in expected:
        refs.setdefault(key, ref)
    found: dict[str, JobRecord | RecordStatus] = dict(store.get_status_many(list(refs)))
    doubtful = [key for key, status in found.items() if status.ref != refs[key]]
    if doubtful:
        whole = store.get_many(doubtful)
        for key in doubtful:
            if key in whole:
                found[key] = whole[key]
            else:
                del found[key]  # gone meanwhile
    return found
