"""A Redis store's scans and counts, as the sweeper and the CLI page through records.

Pages come from sorted-set indexes (ZRANGEBYLEX in key order, or by time for records without
a reference), each page read in one script call; the by-server and by-time indexes are built
once for records an older kqueue wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from kqueue.stores import _redis_codec as codec
from kqueue.stores._redis_core import RedisStoreCore
from kqueue.stores.base import JobRecord, UnscheduledCursor

if TYPE_CHECKING:
    from redis.commands.core import Script


class RedisScans(RedisStoreCore):
    """The scans and counts of :class:`~kqueue.stores.redis.RedisStore`."""

    def scan(
        self, *, after: str | None = None, limit: int = 500, job_type: str | None = None
    ) -> list[JobRecord]:
        """Up to ``limit`` records with key > ``after`` in ascending key order, in one call."""
        if limit <= 0:
            return []
        index = self._index if job_type is None else self._type_index(job_type)
        lower = "-" if after is None else "(" + after
        with self._translate("scan"):
            reply: list[Any] = self._run(
                self._scan, keys=[index], args=[lower, limit, self._prefix + "r:"]
            )
        records = []
        for raw_key, flat in zip(reply[::2], reply[1::2], strict=True):
            if flat:  # an index entry without its hash would be a bug; skip rather than crash
                records.append(codec.decode_record(raw_key.decode(), codec.pairs(flat)))
        return records

    def count(self, job_type: str | None = None) -> int:
        """How many records are stored (of one job type, or all)."""
        index = self._index if job_type is None else self._type_index(job_type)
        with self._translate("count"):
            return int(self._conn().zcard(index))

    def referenced_servers(self) -> set[str]:
        """Every server id a reference names, from the set kept beside the indexes."""
        self._ensure_ref_index()
        with self._translate("referenced_servers"):
            members = cast("set[bytes]", self._conn().smembers(self._prefix + "servers"))
        return {member.decode() for member in members}

    def scan_referencing(
        self, server_id: str | None, *, after: str | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records whose reference names ``server_id`` (None: none), in key order, from the
        by-server index."""
        if limit <= 0:
            return []
        self._ensure_ref_index()
        index = self._prefix + ("u" if server_id is None else "s:" + server_id)
        lower = "-" if after is None else "(" + after
        args: list[str | int] = [lower, limit, self._prefix + "r:", *codec.FIELD_ORDER]
        with self._translate("scan_referencing"):
            reply: list[Any] = self._run(self._scan_fields, keys=[index], args=args)
        return [
            codec.record_from_values(raw_key.decode(), values)
            for raw_key, values in zip(reply[::2], reply[1::2], strict=True)
            if values[0] is not None  # an index entry without its hash: skip, never crash
        ]

    def scan_unscheduled(
        self, *, before: float, after: UnscheduledCursor | None = None, limit: int = 500
    ) -> list[JobRecord]:
        """Records without a reference written before ``before``, in ``(updated_at, key)``
        order, from the index by time."""
        if limit <= 0:
            return []
        self._ensure_ref_index()
        at, last = ("", "") if after is None else (repr(float(after[0])), after[1])
        args: list[str | int] = [repr(float(before)), at, last, limit, self._prefix + "r:"]
        args += codec.FIELD_ORDER
        with self._translate("scan_unscheduled"):
            reply: list[Any] = self._run(
                self._scan_unscheduled, keys=[self._prefix + "ut"], args=args
            )
        return [
            codec.record_from_values(raw_key.decode(), values)
            for raw_key, values in zip(reply[::2], reply[1::2], strict=True)
        ]

    def count_unscheduled(self, *, since: float | None = None) -> int:
        """Records without a reference (written ``since`` or later): one ZCOUNT of the index
        by time."""
        self._ensure_ref_index()
        lower = "-inf" if since is None else repr(float(since))
        with self._translate("count_unscheduled"):
            return int(self._conn().zcount(self._prefix + "ut", lower, "+inf"))

    def _ensure_ref_index(self) -> None:
        """Index by server and by time, once per store, the records written before those
        indexes existed (an older kqueue); every write since keeps them."""
        if self._ref_indexed:
            return
        with self._translate("indexing references"):
            self._build_index("refidx", self._build_ref_index, self._index)
            self._build_index("utidx", self._build_time_index, self._prefix + "u")
        self._ref_indexed = True

    def _build_index(self, marker: str, script: Script, source: str) -> None:
        """Run an index-building script over ``source`` a page at a time, unless the store's
        ``marker`` says it was built (or the store was new since it existed)."""
        if self._conn().exists(self._prefix + marker):
            return
        lower = "-"
        while lower:
            last = self._run(script, keys=[source], args=[self._prefix, lower, 1000])
            lower = "(" + last.decode() if last else ""
        self._conn().set(self._prefix + marker, "1")
