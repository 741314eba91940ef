"""A Redis store's unique keys: claims written with their records, released, pruned.

A claim is ``<prefix>q:<unique key>``, indexed in ``<prefix>qidx``; see
:meth:`~kqueue.stores.base.Store.put_unique`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kqueue.errors import StoreError
from kqueue.stores import _redis_codec as codec
from kqueue.stores._redis_core import RedisStoreCore
from kqueue.stores.base import JobRecord, UniqueClaim, check_claims


class RedisUnique(RedisStoreCore):
    """The unique-key operations of :class:`~kqueue.stores.redis.RedisStore`."""

    def put_unique(
        self, records: Sequence[JobRecord], claims: Sequence[UniqueClaim | None], *, now: float
    ) -> list[str | None]:
        """Write the records whose unique key is free, deciding in one script call (see
        :meth:`Store.put_unique`). An expiring claim also expires in Redis a minute after its
        time, so that claims nobody asks for again do not pile up."""
        check_claims(records, claims)
        if not records:
            return []
        if len({record.key for record in records}) != len(records):
            raise StoreError("put_unique got the same key twice; nothing was written")
        self._check_sizes(records)
        shared = codec.shared_fields(records)
        if shared is not None:
            return self._put_unique_packed(records, claims, shared, now)
        script_keys: list[str] = [self._index]
        args: list[str | bytes | int | float] = [repr(float(now)), self._prefix, len(records)]
        for record, claim in zip(records, claims, strict=True):
            hash_key = self._record_key(record.key)
            claim_key = hash_key if claim is None else self._claim_key(claim.unique_key)
            script_keys += [hash_key, self._type_index(record.job_type), claim_key]
            fields = codec.encode_record(record)
            server = "" if record.ref is None else "=" + record.ref.server_id
            args += [record.key, server, *codec.claim_args(claim, now), len(fields), *fields]
        with self._translate("put_unique"):
            reply: list[Any] = self._run(self._put_unique, keys=script_keys, args=args, wait=True)
        return codec.holders(records, reply)

    def _put_unique_packed(
        self,
        records: Sequence[JobRecord],
        claims: Sequence[UniqueClaim | None],
        shared: list[str | int],
        now: float,
    ) -> list[str | None]:
        """put_unique of records alike but for key, payload and codec: those three and the
        claim per record, the rest once (as put_many's packed script)."""
        args: list[str | bytes | int] = [repr(float(now)), self._prefix, *shared]
        for record, claim in zip(records, claims, strict=True):
            unique_key = "" if claim is None else claim.unique_key
            args += [
                record.key,
                record.payload,
                record.codec,
                unique_key,
                *codec.claim_args(claim, now),
            ]
        script_keys = [self._index, self._type_index(records[0].job_type)]
        with self._translate("put_unique"):
            reply: list[Any] = self._run(
                self._unique_packed, keys=script_keys, args=args, wait=True
            )
        return codec.holders(records, reply)

    def _claim_key(self, unique_key: str) -> str:
        return f"{self._prefix}q:{unique_key}"

    def release_unique(self, holds: Sequence[tuple[str, str]]) -> int:
        """Release each unique key that the given record still holds, in one script call."""
        if not holds:
            return 0
        keys = [self._claim_key(unique_key) for unique_key, _ in holds]
        args = [self._prefix, *(record_key for _, record_key in holds)]
        with self._translate("release_unique"):
            return int(self._run(self._release_unique, keys=keys, args=args))

    def prune_unique(
        self, *, now: float, after: str | None = None, limit: int = 1000
    ) -> tuple[int, str | None]:
        """Delete up to a page of claims that no longer hold their key, in one script call
        over the claim index (claims that expired in Redis leave only their index entry)."""
        lower = "-" if after is None else "(" + after
        args: list[str | int] = [self._prefix, repr(float(now)), lower, max(1, limit)]
        with self._translate("prune_unique"):
            pruned, last = self._run(self._prune_unique, keys=[self._prefix + "qidx"], args=args)
        return int(pruned), (last.decode() or None)
