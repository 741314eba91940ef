"""Async access to a store: the calls the asyncio producer and worker make, awaited.

:func:`async_store` picks how: Redis natively through ``redis.asyncio``
(:class:`~kqueue.aio.redis_store.AsyncRedisStore`, the same Lua scripts as
:class:`~kqueue.stores.redis.RedisStore`); the memory store directly (its calls never block);
every other store (SQL: SQLite, PostgreSQL, MariaDB/MySQL) through a thread hop
(``asyncio.to_thread``), so the event loop never waits on a driver. The sync store stays the
one that holds the connections' settings and that the admin and the sweeper use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from kqueue.stores.base import JobRecord, RecordState, RecordStatus, RefSwap, Store

__all__ = ["AsyncStore", "DirectStore", "ThreadedStore", "async_store"]


class AsyncStore(Protocol):
    """The store calls of adding and running jobs, awaited (see :class:`Store` for each)."""

    sync: Store
    """The store these calls reach (for everything else: admin, sweeper)."""

    async def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records in one round trip, all or none."""

    async def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The records that exist among ``keys``, by key."""

    async def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """The status of the records that exist among ``keys``, by key."""

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Remove several records; the number that existed."""

    async def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """Compare-and-set several broker references; the number that succeeded."""

    async def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """Store the attempt count, last error and state after a failure; False if gone."""


class ThreadedStore:
    """A sync store's calls, each run in a worker thread (``asyncio.to_thread``)."""

    def __init__(self, store: Store) -> None:
        self.sync = store

    async def put_many(self, records: Sequence[JobRecord]) -> None:
        """See :meth:`Store.put_many`."""
        await asyncio.to_thread(self.sync.put_many, records)

    async def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """See :meth:`Store.get_many`."""
        return await asyncio.to_thread(self.sync.get_many, keys)

    async def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """See :meth:`Store.get_status_many`."""
        return await asyncio.to_thread(self.sync.get_status_many, keys)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """See :meth:`Store.delete_many`."""
        return await asyncio.to_thread(self.sync.delete_many, keys)

    async def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """See :meth:`Store.swap_references`."""
        return await asyncio.to_thread(self.sync.swap_references, swaps, now=now)

    async def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """See :meth:`Store.record_attempt`."""
        return await asyncio.to_thread(
            self.sync.record_attempt,
            key,
            attempts=attempts,
            last_error=last_error,
            state=state,
            now=now,
        )


class DirectStore(ThreadedStore):
    """A store whose calls never block (the memory store): called on the loop itself."""

    async def put_many(self, records: Sequence[JobRecord]) -> None:
        """See :meth:`Store.put_many`."""
        self.sync.put_many(records)

    async def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """See :meth:`Store.get_many`."""
        return self.sync.get_many(keys)

    async def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """See :meth:`Store.get_status_many`."""
        return self.sync.get_status_many(keys)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """See :meth:`Store.delete_many`."""
        return self.sync.delete_many(keys)

    async def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """See :meth:`Store.swap_references`."""
        return self.sync.swap_references(swaps, now=now)

    async def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """See :meth:`Store.record_attempt`."""
        return self.sync.record_attempt(
            key, attempts=attempts, last_error=last_error, state=state, now=now
        )


def async_store(store: Store) -> AsyncStore:
    """The async access to ``store`` (see the module docstring for which)."""
    from kqueue.stores.memory import MemoryStore

    if isinstance(store, MemoryStore):
        return DirectStore(store)
    return ThreadedStore(store)
