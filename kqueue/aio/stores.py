"""Async access to a store: the calls the asyncio producer and worker make, awaited.

:func:`async_store` picks how: Redis natively (:class:`AsyncRedisStore`, the same Lua
scripts as :class:`~kqueue.stores.redis.RedisStore`, on the lean connection of
:mod:`kqueue.aio.resp`, or ``redis.asyncio`` where that does not apply); the memory store
directly (its calls never block); every other store (SQL: SQLite, PostgreSQL,
MariaDB/MySQL) through a thread hop (``asyncio.to_thread``), so the event loop never waits on
a driver. The sync store stays the
one that holds the connections' settings and that the admin and the sweeper use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kqueue.aio.resp import LeanRedisConnection, lean_connection
from kqueue.stores._redis_connect import WAITED
from kqueue.stores.base import (
    BrokerRef,
    JobRecord,
    RecordState,
    RecordStatus,
    RefSwap,
    Store,
    read_checked,
)

if TYPE_CHECKING:
    from kqueue.stores.redis import RedisStore, ScriptCall

__all__ = [
    "AsyncRedisStore",
    "AsyncStore",
    "DirectStore",
    "ThreadedStore",
    "async_store",
]


class AsyncStore(Protocol):
    """The store calls of adding and running jobs, awaited (see :class:`Store` for each)."""

    @property
    def sync(self) -> Store:
        """The store these calls reach (for everything else: admin, sweeper)."""

    async def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records in one round trip, all or none."""

    async def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The records that exist among ``keys``, by key."""

    async def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """The status of the records that exist among ``keys``, by key."""

    async def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        """What a worker reads for jobs whose payload came inline (see
        :func:`~kqueue.stores.base.read_checked`)."""

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Remove several records; the number that existed."""

    async def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """Compare-and-set several broker references; the number that succeeded."""

    async def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """Store the attempt count, last error and state after a failure; False if gone."""

    async def aclose(self) -> None:
        """Close what this access opened (never the sync store)."""


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

    async def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        """See :func:`~kqueue.stores.base.read_checked`."""
        return await asyncio.to_thread(read_checked, self.sync, expected)

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

    async def aclose(self) -> None:
        """Nothing to close: the threads use the sync store's connections."""


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

    async def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        """See :func:`~kqueue.stores.base.read_checked`."""
        return read_checked(self.sync, expected)

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


class AsyncRedisStore:
    """A :class:`~kqueue.stores.redis.RedisStore`'s calls on a ``redis.asyncio`` client: the
    same Lua scripts, built by the store without I/O (its ``*_call`` methods), run here."""

    def __init__(self, store: RedisStore) -> None:
        self.sync = store
        self._client: Any = None
        self._idle: list[Any] = []  # connections between calls; one per call in flight
        self._lean: LeanRedisConnection | None = None
        self._lean_checked = False

    async def _execute(self, call: ScriptCall | None, empty: Any = None) -> Any:
        if call is None:
            return empty
        if not self._lean_checked:
            self._client = self.sync.async_client()
            self._lean, self._lean_checked = self._lean_for(self._client), True
        try:
            if self._lean is not None:
                reply = await self._lean_evalsha(self._lean, call)
            else:
                reply = await self._evalsha(call)
        except Exception as exc:
            with self.sync.translate(call.action):  # (entered only on the error path)
                raise exc
        return call.decode(reply)

    def _lean_for(self, client: Any) -> LeanRedisConnection | None:
        """The lean connection for one plain server; None for Sentinel (the master may
        move), Cluster (keys route by slot) and a store that waits for replicas (WAIT)."""
        sync = self.sync
        if sync.cluster or sync.sentinel or sync.replica_wait is not None:
            return None
        return lean_connection(client)

    async def _lean_evalsha(self, conn: LeanRedisConnection, call: ScriptCall) -> Any:
        """EVALSHA on the lean connection (see :mod:`kqueue.aio.resp`), shared by the
        coroutines calling at once; a script the server lost is loaded."""
        keys, sha = call.keys, call.script.sha
        try:
            return await conn.call("EVALSHA", sha, len(keys), *keys, *call.args)
        except _no_script_error():
            await conn.call("SCRIPT", "LOAD", call.script.script)
            return await conn.call("EVALSHA", sha, len(keys), *keys, *call.args)

    async def _evalsha(self, call: ScriptCall) -> Any:
        """EVALSHA on a connection of its own, past the client's command layer (as the sync
        store does: most of a call's cost is there); a script the server lost is loaded.
        Concurrent calls each take a connection (made when none is idle), so they run side
        by side; a call sequence reuses one. A record write of a store with ``replicas``
        then sends WAIT on the same connection; a cluster's client routes the call itself."""
        if self._client is None:
            self._client = self.sync.async_client()
        if self.sync.cluster:
            return await self._cluster_call(call)
        conn = self._idle.pop() if self._idle else self._client.connection_pool.make_connection()
        keys, sha = call.keys, call.script.sha
        wait = self.sync.replica_wait if call.action in WAITED else None
        try:
            if self.sync.sentinel:
                # Ask the Sentinels for the master when not connected: redis-py's async
                # Sentinel connection would otherwise (re)connect to the address it last had.
                await conn.connect()
            await conn.send_command("EVALSHA", sha, len(keys), *keys, *call.args)
            try:
                reply = await conn.read_response()
            except _no_script_error():
                await conn.send_command("SCRIPT", "LOAD", call.script.script)
                await conn.read_response()
                await conn.send_command("EVALSHA", sha, len(keys), *keys, *call.args)
                reply = await conn.read_response()
            if wait is not None:
                await conn.send_command("WAIT", *wait)
                acked = await conn.read_response()
        except _response_error():
            self._idle.append(conn)  # the reply was read: the connection is still in step
            raise
        except BaseException:
            await conn.disconnect()  # a reply may be left unread: this one is dropped
            raise
        self._idle.append(conn)
        if wait is not None:
            self.sync.check_wait(acked)
        return reply

    async def _cluster_call(self, call: ScriptCall) -> Any:
        """EVALSHA through the cluster client (to the node of the keys), EVAL when that node
        lacks the script."""
        keys = call.keys
        try:
            return await self._client.evalsha(call.script.sha, len(keys), *keys, *call.args)
        except _no_script_error():
            return await self._client.eval(call.script.script, len(keys), *keys, *call.args)

    async def put_many(self, records: Sequence[JobRecord]) -> None:
        """See :meth:`Store.put_many`."""
        await self._execute(self.sync.put_many_call(records))

    async def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """See :meth:`Store.get_many`."""
        found: dict[str, JobRecord] = await self._execute(self.sync.get_many_call(keys), {})
        return found

    async def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """See :meth:`Store.get_status_many`."""
        call = self.sync.get_status_many_call(keys)
        found: dict[str, RecordStatus] = await self._execute(call, {})
        return found

    async def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        """See :func:`~kqueue.stores.base.read_checked`: one script call."""
        call = self.sync.get_checked_many_call(expected)
        found: dict[str, JobRecord | RecordStatus] = await self._execute(call, {})
        return found

    async def delete_many(self, keys: Sequence[str]) -> int:
        """See :meth:`Store.delete_many`."""
        return int(await self._execute(self.sync.delete_many_call(keys), 0))

    async def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """See :meth:`Store.swap_references`."""
        return int(await self._execute(self.sync.swap_references_call(swaps, now=now), 0))

    async def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """See :meth:`Store.record_attempt`."""
        call = self.sync.record_attempt_call(
            key, attempts=attempts, last_error=last_error, state=state, now=now
        )
        return bool(await self._execute(call))

    async def aclose(self) -> None:
        """Close the asyncio connections (the sync store stays open)."""
        if self._lean is not None:
            self._lean.close()
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _no_script_error() -> type[Exception]:
    from redis.exceptions import NoScriptError

    return NoScriptError


def _response_error() -> type[Exception]:
    from redis.exceptions import ResponseError

    return ResponseError


def async_store(store: Store) -> AsyncStore:
    """The async access to ``store`` (see the module docstring for which)."""
    from kqueue.stores.memory import MemoryStore
    from kqueue.stores.redis import RedisStore

    if isinstance(store, MemoryStore):
        return DirectStore(store)
    if isinstance(store, RedisStore):
        return AsyncRedisStore(store)
    return ThreadedStore(store)
