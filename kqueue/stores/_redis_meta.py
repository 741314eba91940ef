"""A Redis store's data beside the records: kept results, suspended job types, server
sightings and recovery pass reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from kqueue.stores._redis_core import RedisStoreCore
from kqueue.stores.base import SWEEPS_KEPT, ServerSighting, StoredResult


class RedisMeta(RedisStoreCore):
    """Results, suspension, sightings and sweeps of :class:`~kqueue.stores.redis.RedisStore`."""

    def _result_key(self, key: str) -> str:
        return f"{self._prefix}res:{key}"

    def put_result(self, key: str, result: StoredResult) -> None:
        """Keep an outcome as a hash that Redis expires at ``result.expires_at``."""
        result_key = self._result_key(key)
        fields: dict[Any, Any] = {
            "outcome": result.outcome,
            "payload": result.payload,
            "codec": result.codec,
            "finished_at": repr(float(result.finished_at)),
            "expires_at": repr(float(result.expires_at)),
        }
        with self._translate("put_result"):
            pipe = self._conn().pipeline(transaction=True)
            pipe.delete(result_key)
            pipe.hset(result_key, mapping=fields)
            pipe.pexpireat(result_key, max(1, int(result.expires_at * 1000)))
            pipe.execute()

    def get_result(self, key: str, *, now: float) -> StoredResult | None:
        """The outcome kept under ``key`` unless expired by ``now``."""
        names = ("outcome", "payload", "codec", "finished_at", "expires_at")
        with self._translate("get_result"):
            values = cast("list[bytes | None]", self._conn().hmget(self._result_key(key), names))
        outcome, payload, codec, finished_at, expires_at = values
        if outcome is None or payload is None or codec is None or float(expires_at or 0) <= now:
            return None
        return StoredResult(
            "failed" if outcome == b"failed" else "done",
            payload,
            codec.decode(),
            float(finished_at or 0),
            float(expires_at or 0),
        )

    def set_suspended(self, job_type: str, suspended: bool) -> None:
        """Mark a job type suspended (or no longer) in a Redis set."""
        with self._translate("set_suspended"):
            if suspended:
                self._conn().sadd(self._suspended_key, job_type)
            else:
                self._conn().srem(self._suspended_key, job_type)

    def suspended(self) -> set[str]:
        """The job types currently marked suspended."""
        with self._translate("suspended"):
            members = cast("set[bytes]", self._conn().smembers(self._suspended_key))
        return {member.decode() for member in members}

    def note_servers(self, sightings: Mapping[str, ServerSighting]) -> None:
        """Remember each server id's address and when it was seen, in one Redis hash."""
        if not sightings:
            return
        fields = {sid: json.dumps([s.address, s.seen_at]) for sid, s in sightings.items()}
        with self._translate("note_servers"):
            self._conn().hset(self._sightings_key, mapping=fields)  # type: ignore[arg-type]

    def servers_seen(self) -> dict[str, ServerSighting]:
        """Every remembered server id with its sighting."""
        with self._translate("servers_seen"):
            fields = cast("dict[bytes, bytes]", self._conn().hgetall(self._sightings_key))
        seen = {}
        for sid, value in fields.items():
            address, seen_at = json.loads(value)
            seen[sid.decode()] = ServerSighting(str(address), float(seen_at))
        return seen

    def forget_servers(self, server_ids: Iterable[str]) -> int:
        """Drop the sightings of these server ids; how many there were."""
        ids = sorted(set(server_ids))
        if not ids:
            return 0
        with self._translate("forget_servers"):
            return int(self._conn().hdel(self._sightings_key, *ids))

    def record_sweep(self, report: str, *, at: float) -> None:
        """Keep a recovery pass's report at the head of a capped Redis list."""
        entry = json.dumps([at, report])
        with self._translate("record_sweep"):
            pipe = self._conn().pipeline(transaction=True)
            pipe.lpush(self._sweeps_key, entry)
            pipe.ltrim(self._sweeps_key, 0, SWEEPS_KEPT - 1)
            pipe.execute()

    def recent_sweeps(self, limit: int = SWEEPS_KEPT) -> list[tuple[float, str]]:
        """The newest kept sweep reports, newest first."""
        if limit <= 0:
            return []
        with self._translate("recent_sweeps"):
            entries = cast("list[bytes]", self._conn().lrange(self._sweeps_key, 0, limit - 1))
        return [(float(at), str(report)) for at, report in map(json.loads, entries)]
