"""The in-process reference store: every rule of the contract, no durability.

Useful for tests and for a single process that accepts losing its jobs on exit. Other stores
are checked against the same contract suite and must behave exactly like this one.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import heapq
import threading
from collections.abc import Iterable, Mapping, Sequence

from kqueue.errors import StoreError
from kqueue.stores.base import (
    MAX_FAILURES,
    SWEEPS_KEPT,
    AttemptFailure,
    JobRecord,
    RecordState,
    RefSwap,
    ServerSighting,
    StoreBase,
    StoredResult,
    UniqueClaim,
    UnscheduledCursor,
    check_claims,
    unique_key_held,
    unscheduled_cursor,
)


class _SortedKeys:
    """A sorted list of keys with O(log n) lookup, for ordered scans."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def add(self, key: str) -> None:
        bisect.insort(self.keys, key)

    def remove(self, key: str) -> None:
        index = bisect.bisect_left(self.keys, key)
        if index < len(self.keys) and self.keys[index] == key:
            del self.keys[index]

    def page(self, after: str | None, limit: int) -> list[str]:
        start = 0 if after is None else bisect.bisect_right(self.keys, after)
        return self.keys[start : start + limit]


class MemoryStore(StoreBase):
    """A thread-safe store that keeps records in a dict; lost when the process exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, JobRecord] = {}
        self._all = _SortedKeys()
        self._by_type: dict[str, _SortedKeys] = {}
        self._by_server: dict[str | None, _SortedKeys] = {}
        self._suspended: set[str] = set()
        self._sightings: dict[str, ServerSighting] = {}
        self._sweeps: collections.deque[tuple[float, str]] = collections.deque(maxlen=SWEEPS_KEPT)
        self._unique: dict[str, tuple[str, UniqueClaim]] = {}  # unique key -> (record key, claim)
        self._failures: dict[str, tuple[AttemptFailure, ...]] = {}
        self._results: dict[str, StoredResult] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap: the next result to expire first
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore(records={len(self._records)})"

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("MemoryStore is closed")

    def _insert(self, record: JobRecord) -> None:
        self._records[record.key] = record
        self._all.add(record.key)
        self._by_type.setdefault(record.job_type, _SortedKeys()).add(record.key)
        self._index_server(record.key, None, record)

    def _index_server(self, key: str, old: JobRecord | None, new: JobRecord | None) -> None:
        """Move ``key`` in the by-server index from ``old``'s server to ``new``'s."""
        for record, add in ((old, False), (new, True)):
            if record is None:
                continue
            server = None if record.ref is None else record.ref.server_id
            if add:
                self._by_server.setdefault(server, _SortedKeys()).add(key)
                continue
            index = self._by_server[server]
            index.remove(key)
            if not index.keys:
                del self._by_server[server]

    def _remove(self, key: str) -> bool:
        record = self._records.pop(key, None)
        if record is None:
            return False
        self._failures.pop(key, None)
        self._all.remove(key)
        type_index = self._by_type[record.job_type]
        type_index.remove(key)
        if not type_index.keys:
            del self._by_type[record.job_type]
        self._index_server(key, record, None)
        return True

    def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records, all or none."""
        with self._lock:
            self._check_open()
            seen: set[str] = set()
            for record in records:
                if record.key in self._records or record.key in seen:
                    raise StoreError(f"a record with key {record.key!r} already exists")
                seen.add(record.key)
            for record in records:
                self._insert(record)

    def put_unique(
        self, records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None], *, now: float
    ) -> list[str | None]:
        """Write the records whose unique key is free, under the store's lock; the holders
        of the others (see :meth:`Store.put_unique`)."""
        check_claims(records, claims)
        with self._lock:
            self._check_open()
            holders = [self._holder(claim, now) for claim in claims]
            written = [r for r, holder in zip(records, holders, strict=True) if holder is None]
            for record in written:
                if record.key in self._records:
                    raise StoreError(f"a record with key {record.key!r} already exists")
            for record, claim, holder in zip(records, claims, holders, strict=True):
                if holder is None:
                    self._insert(record)
                    if claim is not None:
                        self._unique[claim.unique_key] = (record.key, claim)
            return holders

    def _holder(self, claim: UniqueClaim | None, now: float) -> str | None:
        if claim is None or claim.unique_key not in self._unique:
            return None
        record_key, held = self._unique[claim.unique_key]
        exists = record_key in self._records
        return record_key if unique_key_held(held, record_exists=exists, now=now) else None

    def release_unique(self, holds: Sequence[tuple[str, str]]) -> int:
        """Release each unique key that the given record still holds."""
        released = 0
        with self._lock:
            self._check_open()
            for unique_key, record_key in holds:
                found = self._unique.get(unique_key)
                if found is not None and found[0] == record_key:
                    del self._unique[unique_key]
                    released += 1
        return released

    def prune_unique(
        self, *, now: float, after: str | None = None, limit: int = 1000
    ) -> tuple[int, str | None]:
        """Delete up to a page of claims that no longer hold their key."""
        with self._lock:
            self._check_open()
            page = sorted(key for key in self._unique if after is None or key > after)
            page = page[: max(1, limit)]
            pruned = 0
            for unique_key in page:
                record_key, claim = self._unique[unique_key]
                exists = record_key in self._records
                if not unique_key_held(claim, record_exists=exists, now=now):
                    del self._unique[unique_key]
                    pruned += 1
            return pruned, (page[-1] if page and len(page) == max(1, limit) else None)

    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The records that exist among ``keys``, by key."""
        with self._lock:
            self._check_open()
            return {key: self._records[key] for key in keys if key in self._records}

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove several records; the number that existed."""
        with self._lock:
            self._check_open()
            return sum(1 for key in set(keys) if self._remove(key))

    def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """Compare-and-set several references; the number that succeeded."""
        done = 0
        with self._lock:
            self._check_open()
            for key, expected, new in swaps:
                record = self._records.get(key)
                if record is not None and record.ref == expected:
                    changed = dataclasses.replace(record, ref=new, updated_at=now)
                    self._records[key] = changed
                    self._index_server(key, record, changed)
                    done += 1
        return done

    def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """Store the attempt count, last error and state; False if the record is gone."""
        with self._lock:
            self._check_open()
            record = self._records.get(key)
            if record is None:
                return False
            self._records[key] = dataclasses.replace(
                record, attempts=attempts, last_error=last_error, state=state, updated_at=now
            )
            return True

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
        """Store the attempt, and append ``failure`` to the record's history."""
        with self._lock:
            self._check_open()
            record = self._records.get(key)
            if record is None:
                return False
            self._records[key] = dataclasses.replace(
                record, attempts=attempts, last_error=last_error, state=state, updated_at=now
            )
            history = (*self._failures.get(key, ()), failure)
            self._failures[key] = history[-MAX_FAILURES:]
            return True

    def get_failures(self, key: str) -> list[AttemptFailure]:
        """The record's failure history, oldest first."""
        with self._lock:
            self._check_open()
            return list(self._failures.get(key, ()))

    def put_result(self, key: str, result: StoredResult) -> None:
        """Keep a job's outcome (those expired by its finishing time are dropped)."""
        with self._lock:
            self._check_open()
            while self._expiries and self._expiries[0][0] <= result.finished_at:
                expires_at, old = heapq.heappop(self._expiries)
                kept = self._results.get(old)
                if kept is not None and kept.expires_at == expires_at:
                    del self._results[old]
            self._results[key] = result
            heapq.heappush(self._expiries, (result.expires_at, key))

    def get_result(self, key: str, *, now: float) -> StoredResult | None:
        """The outcome kept under ``key`` unless expired by ``now``."""
        with self._lock:
            self._check_open()
            result = self._results.get(key)
            return result if result is not None and result.expires_at > now else None

    def scan(
        self, *, after: str | None = None, limit: int = 500, job_type: str | None = None
    ) -> list[JobRecord]:
        """Up to ``limit`` records with key > ``after`` in ascending key order."""
        with self._lock:
            self._check_open()
            if limit <= 0:
                return []
            index = self._all if job_type is None else self._by_type.get(job_type)
            if index is None:
                return []
            return [self._records[key] for key in index.page(after, limit)]

    def count(self, job_type: str | None = None) -> int:
        """How many records are stored (of one job type, or all)."""
        with self._lock:
            self._check_open()
            if job_type is None:
                return len(self._records)
            index = self._by_type.get(job_type)
            return 0 if index is None else len(index.keys)

    def referenced_servers(self) -> set[str]:
        """Every server id a reference names (from the by-server index)."""
        with self._lock:
            self._check_open()
            return {server for server in self._by_server if server is not None}

    def scan_referencing(
        self, server_id: str | None, *, after: str | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records whose reference names ``server_id`` (None: none), in key order."""
        with self._lock:
            self._check_open()
            index = self._by_server.get(server_id)
            if index is None or limit <= 0:
                return []
            return [self._records[key] for key in index.page(after, limit)]

    def scan_unscheduled(
        self, *, before: float, after: UnscheduledCursor | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records without a reference written before ``before``, in ``(updated_at, key)``
        order: the reference filters the records without a reference (its index by server)."""
        with self._lock:
            self._check_open()
            index = self._by_server.get(None)
            if index is None or limit <= 0:
                return []
            due = (self._records[key] for key in index.keys)
            due = (r for r in due if r.updated_at < before)
            if after is not None:
                due = (r for r in due if unscheduled_cursor(r) > after)
            return heapq.nsmallest(limit, due, key=unscheduled_cursor)

    def count_unscheduled(self, *, since: float | None = None) -> int:
        """Records without a reference (written ``since`` or later)."""
        with self._lock:
            self._check_open()
            index = self._by_server.get(None)
            keys = [] if index is None else index.keys
            if since is None:
                return len(keys)
            return sum(1 for key in keys if self._records[key].updated_at >= since)

    def set_suspended(self, job_type: str, suspended: bool) -> None:
        """Mark a job type suspended (or no longer)."""
        with self._lock:
            self._check_open()
            if suspended:
                self._suspended.add(job_type)
            else:
                self._suspended.discard(job_type)

    def suspended(self) -> set[str]:
        """The job types currently marked suspended."""
        with self._lock:
            self._check_open()
            return set(self._suspended)

    def note_servers(self, sightings: Mapping[str, ServerSighting]) -> None:
        """Remember each server id's address and when it was seen answering."""
        with self._lock:
            self._check_open()
            self._sightings.update(sightings)

    def servers_seen(self) -> dict[str, ServerSighting]:
        """Every remembered server id with its sighting."""
        with self._lock:
            self._check_open()
            return dict(self._sightings)

    def forget_servers(self, server_ids: Iterable[str]) -> int:
        """Drop the sightings of these server ids; how many there were."""
        with self._lock:
            self._check_open()
            return sum(self._sightings.pop(sid, None) is not None for sid in set(server_ids))

    def record_sweep(self, report: str, *, at: float) -> None:
        """Keep a recovery pass's report (the newest SWEEPS_KEPT)."""
        with self._lock:
            self._check_open()
            self._sweeps.appendleft((at, report))

    def recent_sweeps(self, limit: int = SWEEPS_KEPT) -> list[tuple[float, str]]:
        """The newest kept sweep reports, newest first."""
        with self._lock:
            self._check_open()
            return list(self._sweeps)[: max(0, limit)]

    def close(self) -> None:
        """Forget every record; the store may not be used afterwards."""
        with self._lock:
            self._closed = True
            self._records.clear()
            self._all = _SortedKeys()
            self._by_type.clear()
            self._by_server.clear()
            self._unique.clear()
            self._sweeps.clear()
            self._failures.clear()
            self._results.clear()
            self._expiries.clear()
