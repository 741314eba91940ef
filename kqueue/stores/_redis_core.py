"""The core of a Redis store: its clients and held connections, its scripts registered, the
error translation, and one script call run on this thread's connection. The operations are
in the modules beside it (_redis_records, _redis_unique, _redis_scans, _redis_meta), each a
class over this one that :class:`~kqueue.stores.redis.RedisStore` joins."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kqueue.errors import (
    ConfigurationError,
    RecordTooLargeError,
    ReplicationWaitError,
    StoreConnectionError,
    StoreError,
    StoreOutcomeUnknownError,
)
from kqueue.stores import _redis_client as client_of
from kqueue.stores import _redis_connect as connect
from kqueue.stores import _redis_scripts as scripts
from kqueue.stores import _redis_scripts_scans as scan_scripts
from kqueue.stores import _redis_scripts_unique as unique_scripts
from kqueue.stores import _redis_wire as wire
from kqueue.stores._redis_wire import ScriptCall
from kqueue.stores.base import JobRecord, StoreBase
from kqueue.stores.url import redact_url, scrub

if TYPE_CHECKING:
    import redis as redis_module
    from redis.commands.core import Script


DEFAULT_MAX_RECORD_BYTES = 512 * 1024 * 1024
"""Redis's default ``proto-max-bulk-len``: no single value may be larger."""

MAX_BATCH_BYTES = 1024 * 1024 * 1024 - 64 * 1024 * 1024
"""A little under Redis's default ``client-query-buffer-limit`` (1 GiB) for one command."""


class RedisStoreCore(StoreBase):
    """What every part of :class:`~kqueue.stores.redis.RedisStore` stands on (its
    constructor, documented there)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "kq:",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        connect_timeout: float = 5.0,
        socket_timeout: float | None = 30.0,
        replicas: int | None = None,
        replica_timeout: float = 1.0,
    ) -> None:
        client_of.check_url(url)
        self._redis = client_of.import_redis()
        url, prefix, self._wait = connect.store_options(url, prefix, replicas, replica_timeout)
        self._url = url
        self._ha = connect.ha_scheme(url)
        self._timeouts = (connect_timeout, socket_timeout)
        self._where = redact_url(url)
        self._prefix = prefix
        self.max_record_bytes = max_record_bytes
        self._index = f"{prefix}idx"
        self._suspended_key = f"{prefix}suspended"
        self._sweeps_key = f"{prefix}sweeps"
        self._sightings_key = f"{prefix}sightings"
        self._client_lock = threading.Lock()
        self._client_made: redis_module.Redis | None = None
        scripts_client = self._first_client()
        self._local = threading.local()
        self._closed = False
        self._ref_indexed = False
        # Only a pool without a limit holds one connection per thread (see _conn).
        pool = getattr(self._client_made, "connection_pool", None)
        self._hold_connections = pool is not None and pool.max_connections >= client_of.UNLIMITED
        self._held: weakref.WeakSet[redis_module.Redis] = weakref.WeakSet()
        self._held_lock = threading.Lock()
        self._register_scripts(scripts_client)

    def _first_client(self) -> Any:
        """Make the client now (a cluster's later: it connects at once); the client that
        registers the scripts (a cluster store's never connects: script digests only)."""
        redis = self._redis
        try:
            if self._ha == connect.CLUSTER_SCHEME:
                connect.parse_ha_url(self._url)  # checked now; the client is made lazily
                return redis.Redis()
            self._client_made = self._make_client()
            return self._client_made
        except (ValueError, redis.RedisError) as exc:
            message = scrub(str(exc), self._url)
            raise ConfigurationError(f"invalid Redis URL {self._where!r}: {message}") from exc

    def _make_client(self) -> Any:
        """The sync redis-py client of the URL: one server, a Sentinel master, or a cluster."""
        return client_of.make_client(self._url, self._ha, self._timeouts, aio=False)

    @property
    def _client(self) -> redis_module.Redis:
        """The client; a cluster's is made on first use (redis-py's connects at once)."""
        client = self._client_made
        if client is None:
            with self._client_lock, self._translate("connecting"):
                if self._client_made is None:
                    self._client_made = self._make_client()
                client = self._client_made
        assert client is not None
        return client

    def _register_scripts(self, client: Any) -> None:
        self._put_many = client.register_script(scripts.PUT_MANY)
        self._put_packed = client.register_script(scripts.PUT_MANY_PACKED)
        self._status_many = client.register_script(scripts.STATUS_MANY)
        self._get_many = client.register_script(scripts.GET_MANY)
        self._checked_many = client.register_script(scripts.CHECKED_MANY)
        self._delete_many = client.register_script(scripts.DELETE_MANY)
        self._swap = client.register_script(scripts.SWAP_REFERENCE)
        self._swap_many = client.register_script(scripts.SWAP_REFERENCES)
        self._set_new_refs = client.register_script(scripts.SET_NEW_REFERENCES)
        self._swap_between = client.register_script(scripts.SWAP_BETWEEN_SERVERS)
        self._attempt = client.register_script(scripts.RECORD_ATTEMPT)
        self._failure = client.register_script(scripts.RECORD_FAILURE)
        self._scan = client.register_script(scan_scripts.SCAN)
        self._scan_fields = client.register_script(scan_scripts.SCAN_FIELDS)
        self._build_ref_index = client.register_script(scan_scripts.BUILD_REF_INDEX)
        self._put_unique = client.register_script(unique_scripts.PUT_UNIQUE)
        self._release_unique = client.register_script(unique_scripts.RELEASE_UNIQUE)
        self._prune_unique = client.register_script(unique_scripts.PRUNE_UNIQUE)
        self._unique_packed = client.register_script(unique_scripts.PUT_UNIQUE_PACKED)
        self._build_time_index = client.register_script(scan_scripts.BUILD_TIME_INDEX)
        self._scan_unscheduled = client.register_script(scan_scripts.SCAN_UNSCHEDULED)

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._prefix!r})"

    @property
    def cluster(self) -> bool:
        """True for a Redis Cluster store (``redis+cluster://``)."""
        return self._ha == connect.CLUSTER_SCHEME

    @property
    def sentinel(self) -> bool:
        """True for a store on the master Sentinel names (``redis+sentinel://``)."""
        return self._ha == connect.SENTINEL_SCHEME

    @property
    def client(self) -> redis_module.Redis:
        """The underlying redis-py client (for operations and tests)."""
        return self._client

    @property
    def prefix(self) -> str:
        """The prefix of every key this store writes."""
        return self._prefix

    @contextlib.contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn redis-py errors into the kqueue error tree, with credentials scrubbed."""
        errors = self._redis.exceptions
        try:
            yield
        except errors.TimeoutError as exc:
            # Sent, but no reply in time: a write may have committed (the server is alive but
            # slow, or stopped with the command in its buffer).
            message = scrub(str(exc), self._url)
            raise StoreOutcomeUnknownError(
                f"Redis at {self._where} did not answer {action} in time: {message}"
            ) from exc
        except errors.ConnectionError as exc:
            message = scrub(str(exc), self._url)
            raise StoreConnectionError(
                f"cannot reach Redis at {self._where} ({action}): {message}"
            ) from exc
        except errors.ResponseError as exc:
            message = scrub(str(exc), self._url)
            if "bulk length" in message or "query buffer" in message:
                raise RecordTooLargeError(
                    f"Redis at {self._where} refused {action}: {message}"
                ) from exc
            raise StoreError(f"Redis at {self._where} failed {action}: {message}") from exc
        except (errors.ClusterDownError, errors.RedisClusterException) as exc:
            message = scrub(str(exc), self._url)
            raise StoreConnectionError(
                f"cannot reach Redis Cluster at {self._where} ({action}): {message}"
            ) from exc
        except errors.RedisError as exc:
            message = scrub(str(exc), self._url)
            raise StoreError(f"Redis at {self._where} failed {action}: {message}") from exc

    def _conn(self, slot: str = "held") -> redis_module.Redis:
        """This thread's client, holding one connection of the pool for the thread's life
        (``slot`` "side": a second one, for :meth:`put_many_started`).

        A pooled command takes and returns a connection every time, a cost a held connection
        skips (measured in docs/performance.md), so each thread using the store holds one. With
        a ``max_connections`` in the URL nothing is held (threads would use up the limit):
        every call takes a pooled connection, as plain redis-py does. A held one goes back to the
        pool when the thread ends (the client is garbage) or the store closes; a forked child
        opens its own. Like the pool, it is checked before each use: one the server closed
        (restart, idle timeout, CLIENT KILL), or with a stray reply waiting, is reopened.
        """
        if self._closed:
            raise StoreError(f"the Redis store for {self._where} is closed")
        pid = os.getpid()
        held: tuple[int, redis_module.Redis] | None = getattr(self._local, slot, None)
        if held is not None and held[0] == pid:
            client = held[1]
        else:
            if not self._hold_connections:
                return self._client
            client = self._redis.Redis(
                connection_pool=self._client.connection_pool,
                single_connection_client=True,
                retry=self._redis.retry.Retry(self._redis.backoff.NoBackoff(), 0),
            )
            setattr(self._local, slot, (pid, client))
            with self._held_lock:
                self._held.add(client)
        conn: Any = client.connection  # redis-py's Connection is not annotated
        if conn is not None:
            try:  # (can_read connects a connection that is not: the next command would)
                stale = conn.can_read(timeout=0)
            except (self._redis.exceptions.ConnectionError, OSError):
                stale = True
            if stale:
                conn.disconnect()  # the next command connects afresh
                if self.sentinel:  # through the Sentinels: redis-py's send would reuse
                    conn.connect()  # the address the connection last had (an old master)
        return client

    def _run(
        self,
        script: Script,
        *,
        keys: Sequence[str],
        args: Sequence[str | bytes | int | float] = (),
        wait: bool = False,
    ) -> Any:
        """Run one of the Lua scripts on this thread's connection.

        EVALSHA goes straight to the held connection, skipping the client's command layer
        (its cost is in docs/performance.md); a server that lost the script (restarted,
        SCRIPT FLUSH) gets it loaded again once. ``wait`` (a record write) then waits on the
        same connection for the replicas the store asks for (:meth:`_check_wait`).
        """
        client = self._conn()
        wait_args = () if not wait or self._wait is None else ("WAIT", *self._wait)
        conn: Any = getattr(client, "connection", None)  # (not annotated by redis-py)
        if conn is None:  # no connection to hold (see _conn): the client's own calls
            errors = self._redis.exceptions
            return wire.run_pooled(
                client,
                script,
                keys,
                args,
                errors=errors,
                wait_args=wait_args,
                check_wait=self._check_wait,
            )
        wire.send_script(conn, script, keys, args)
        return self._read_script(conn, script, keys, args, wait_args)

    def _read_script(
        self,
        conn: Any,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        wait_args: tuple[Any, ...] = (),
    ) -> Any:
        """:func:`wire.read_script` with this store's driver errors and replica check."""
        errors = self._redis.exceptions
        return wire.read_script(
            conn,
            script,
            keys,
            args,
            errors=errors,
            wait_args=wait_args,
            check_wait=self._check_wait,
        )

    def _check_wait(self, acked: Any) -> None:
        """ReplicationWaitError when fewer replicas than asked confirmed the write."""
        assert self._wait is not None
        if int(acked) < self._wait.replicas:
            raise ReplicationWaitError(
                f"Redis at {self._where} wrote the record(s), but only {int(acked)} of the "
                f"{self._wait.replicas} replica(s) asked for confirmed them within "
                f"{self._wait.timeout_ms} ms: a failover now could lose them"
            )

    def _record_key(self, key: str) -> str:
        return f"{self._prefix}r:{key}"

    def _type_index(self, job_type: str) -> str:
        return f"{self._prefix}t:{job_type}"

    def _check_sizes(self, records: Sequence[JobRecord]) -> None:
        total = 0
        for record in records:
            size = len(record.payload) + len(record.last_error or "")
            total += size
            if size > self.max_record_bytes:
                raise RecordTooLargeError(
                    f"record {record.key!r} has {size} bytes, over the Redis store's limit "
                    f"of {self.max_record_bytes}; nothing was written"
                )
        if total > MAX_BATCH_BYTES:
            raise RecordTooLargeError(
                f"{len(records)} records with {total} bytes exceed one Redis command's limit "
                f"of {MAX_BATCH_BYTES}; write them in smaller batches (nothing was written)"
            )

    def execute(self, call: ScriptCall) -> Any:
        """Run one script call on this thread's connection; its decoded reply."""
        with self._translate(call.action):
            reply = self._run(
                call.script, keys=call.keys, args=call.args, wait=call.action in connect.WAITED
            )
        return call.decode(reply)

    @contextlib.contextmanager
    def translate(self, action: str) -> Iterator[None]:
        """Turn redis-py errors (sync or asyncio: the same classes) into the kqueue error
        tree, with credentials scrubbed."""
        with self._translate(action):
            yield

    def async_client(self) -> Any:
        """A new ``redis.asyncio`` client on this store's URL and timeouts (the caller closes
        it), for :class:`~kqueue.aio.stores.AsyncRedisStore`."""
        return client_of.make_client(self._url, self._ha, self._timeouts, aio=True)

    @property
    def replica_wait(self) -> connect.ReplicaWait | None:
        """The replicas a record write waits for, and how long (None: no wait)."""
        return self._wait

    def check_wait(self, acked: Any) -> None:
        """ReplicationWaitError when WAIT's reply ``acked`` is below the replicas asked for
        (for the asyncio store, which sends WAIT itself)."""
        self._check_wait(acked)

    def close(self) -> None:
        """Close the connection pool; the store may not be used afterwards."""
        with self._held_lock:
            self._closed = True
            held = list(self._held)
            self._held.clear()
        with self._translate("close"):
            for client in held:
                client.close()
            if self._client_made is not None:
                self._client_made.close()
