"""A store on Redis (redis-py): one hash per record, sorted-set indexes, Lua for atomicity.

Layout under a key prefix (default ``kq:``): ``<prefix>r:<key>`` is the record hash (payload as
raw bytes), ``<prefix>idx`` and ``<prefix>t:<job_type>`` are sorted sets of keys with score 0
(ZRANGEBYLEX pages through them in key order), ``<prefix>s:<server id>`` and ``<prefix>u``
index records by the server their reference names (or none), ``<prefix>servers`` is the set
of those server ids, ``<prefix>sightings`` a hash of server id -> JSON ``[address, seen_at]``
(where recovery last saw each answering), ``<prefix>suspended`` is a set of job types,
``<prefix>sweeps`` a list of the newest recovery pass reports.
Every write that touches a record and its indexes runs as one Lua script, so it is atomic; no
command scans the keyspace. Durability is Redis's own (AOF with ``appendfsync`` as configured).
Several logical stores may share one Redis database through different prefixes. On Redis
Cluster (``redis+cluster://``) the prefix is a hash tag (``{kq:}``), so that every key of one
store lives in one hash slot and each script's keys are on one node: a cluster spreads stores
(queues), not one store. Sentinel and Cluster URLs: :mod:`kqueue.stores._redis_connect`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from kqueue.errors import (
    ConfigurationError,
    RecordTooLargeError,
    ReplicationWaitError,
    StoreConnectionError,
    StoreError,
    StoreOutcomeUnknownError,
)
from kqueue.stores import _redis_connect as connect
from kqueue.stores import _redis_scripts as scripts
from kqueue.stores._common import one_new_server, one_server_pair
from kqueue.stores.base import (
    MAX_FAILURES,
    SWEEPS_KEPT,
    AttemptFailure,
    BrokerRef,
    JobRecord,
    RecordState,
    RecordStatus,
    RefSwap,
    ServerSighting,
    StoreBase,
    StoredResult,
    UniqueClaim,
    UnscheduledCursor,
    check_claims,
    decode_failures,
    encode_failures,
)
from kqueue.stores.url import REDIS_SCHEMES, redact_url, scrub, unencoded_userinfo, url_scheme

if TYPE_CHECKING:
    import redis as redis_module
    from redis.commands.core import Script


DEFAULT_MAX_RECORD_BYTES = 512 * 1024 * 1024
"""Redis's default ``proto-max-bulk-len``: no single value may be larger."""

MAX_BATCH_BYTES = 1024 * 1024 * 1024 - 64 * 1024 * 1024
"""A little under Redis's default ``client-query-buffer-limit`` (1 GiB) for one command."""


def _encode_record(record: JobRecord) -> list[str | bytes | int | float]:
    """The hash fields of a record, as a flat field/value list (optional fields left out)."""
    fields: list[str | bytes | int | float] = [
        "job_type", record.job_type,
        "payload", record.payload,
        "codec", record.codec,
        "priority", record.priority,
        "delay", repr(float(record.delay)),
        "ttr", record.ttr,
        "created_at", repr(float(record.created_at)),
        "attempts", record.attempts,
        "state", record.state,
        "updated_at", repr(float(record.updated_at)),
    ]  # fmt: skip
    if record.last_error is not None:
        fields += ["last_error", record.last_error.encode("utf-8", "backslashreplace")]
    if record.ref is not None:
        fields += ["ref_server", record.ref.server_id, "ref_job", record.ref.job_id]
    if record.unique_until_start is not None:
        fields += ["unique_until_start", record.unique_until_start]
    return fields


def _decode_record(key: str, fields: dict[bytes, bytes]) -> JobRecord:
    """Rebuild a record from its hash (as HGETALL returns it), filling the instance's
    ``__dict__`` at once as ``new_record`` does (a worker decodes one per whole read)."""
    text = {name: value.decode() for name, value in fields.items() if name != b"payload"}
    ref = None
    if b"ref_server" in text:
        ref = BrokerRef(text[b"ref_server"], int(text[b"ref_job"]))
    record: JobRecord = object.__new__(JobRecord)
    record.__dict__.update(
        key=key,
        job_type=text[b"job_type"],
        payload=fields[b"payload"],
        codec=text[b"codec"],
        priority=int(text[b"priority"]),
        delay=float(text[b"delay"]),
        ttr=int(text[b"ttr"]),
        created_at=float(text[b"created_at"]),
        attempts=int(text[b"attempts"]),
        last_error=text.get(b"last_error"),
        ref=ref,
        state="buried" if text[b"state"] == "buried" else "enqueued",
        updated_at=float(text[b"updated_at"]),
        unique_until_start=text.get(b"unique_until_start"),
    )
    return record


_FIELD_ORDER = (
    "job_type", "payload", "codec", "priority", "delay", "ttr", "created_at", "attempts",
    "last_error", "ref_server", "ref_job", "state", "updated_at", "unique_until_start",
)  # fmt: skip


def _record_from_values(key: str, values: list[bytes | None]) -> JobRecord:
    """Rebuild a record from its hash's values in :data:`_FIELD_ORDER` (as SCAN_FIELDS
    returns them), filling the instance's ``__dict__`` at once as ``new_record`` does."""
    (job_type, payload, codec, priority, delay, ttr, created_at, attempts, last_error,
     server, job, state, updated_at, unique) = values  # fmt: skip
    assert job_type is not None and payload is not None and codec is not None
    record: JobRecord = object.__new__(JobRecord)
    record.__dict__.update(
        key=key,
        job_type=job_type.decode(),
        payload=payload,
        codec=codec.decode(),
        priority=int(priority or 0),
        delay=float(delay or 0),
        ttr=int(ttr or 0),
        created_at=float(created_at or 0),
        attempts=int(attempts or 0),
        last_error=None if last_error is None else last_error.decode(),
        ref=None if server is None else BrokerRef(server.decode(), int(job or 0)),
        state="buried" if state == b"buried" else "enqueued",
        updated_at=float(updated_at or 0),
        unique_until_start=None if unique is None else unique.decode(),
    )
    return record


def _status_of(line: bytes) -> RecordStatus:
    """A record's status from its line of STATUS_MANY (or CHECKED_MANY)."""
    attempts, state, server, job = line.decode().split(" ")
    ref = BrokerRef(server, int(job)) if server else None
    return RecordStatus(int(attempts), "buried" if state == "buried" else "enqueued", ref)


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _shared_fields(records: Sequence[JobRecord]) -> list[str | int] | None:
    """The fields that every record shares, when the packed put script can write them all:
    new records (no reference or error) alike in everything but key, payload and codec."""
    first = records[0]
    shared = (
        first.job_type, first.priority, first.delay, first.ttr, first.created_at,
        first.attempts, first.state, first.updated_at,
    )  # fmt: skip
    for r in records:
        mine = (
            r.job_type, r.priority, r.delay, r.ttr, r.created_at, r.attempts, r.state,
            r.updated_at,
        )  # fmt: skip
        if mine != shared or r.ref is not None or r.last_error is not None:
            return None
        if r.unique_until_start is not None:
            return None
    return [
        first.job_type, first.priority, repr(float(first.delay)), first.ttr,
        repr(float(first.created_at)), first.attempts, first.state,
        repr(float(first.updated_at)),
    ]  # fmt: skip


def _holders(records: Sequence[JobRecord], reply: list[Any]) -> list[str | None]:
    """The holders a put_unique script answered, or StoreError for a record key it found."""
    if int(reply[0]):
        key = records[int(reply[0]) - 1].key
        raise StoreError(f"a record with key {key!r} already exists; nothing was written")
    return [holder.decode() or None for holder in reply[1:]]


def _claim_args(claim: UniqueClaim | None, now: float) -> list[str | int]:
    """until, expires and time to live in ms (a minute past the expiry) of a claim."""
    if claim is None:
        return ["", "", ""]
    if claim.expires_at is None:
        return [claim.until, "", ""]
    ttl_ms = max(1, int((claim.expires_at - now) * 1000)) + 60_000
    return [claim.until, repr(float(claim.expires_at)), ttl_ms]


def _ref_args(ref: BrokerRef | None) -> list[str | int]:
    return ["0", "", ""] if ref is None else ["1", ref.server_id, ref.job_id]


def _check_url(url: str) -> None:
    if url_scheme(url) not in REDIS_SCHEMES:
        raise ConfigurationError(f"not a Redis URL: {redact_url(url)!r}")
    if unencoded_userinfo(url):
        raise ConfigurationError(
            f"the password in {redact_url(url)!r} holds / ? # or @ unencoded: "
            "percent-encode them (%2F %3F %23 %40)"
        )


def _hiredis_packer() -> Callable[[tuple[Any, ...]], bytes] | None:
    """hiredis's command packer, or None without hiredis (redis-py then packs itself)."""
    try:
        from hiredis import pack_command
    except ImportError:
        return None
    return cast("Callable[[tuple[Any, ...]], bytes]", pack_command)


_pack_command = _hiredis_packer()


def _import_redis() -> Any:
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as exc:
        raise ConfigurationError("RedisStore needs redis-py: pip install kqueue[redis]") from exc
    return redis


_UNLIMITED = 2**31
"""The size of a store's pool whose URL sets no ``max_connections`` (a limit in the URL wins):
redis-py 8 caps its default pool at 100 connections (2**31 before)."""


def _nothing() -> None:
    pass


def _is_one(reply: Any) -> bool:
    return int(reply) == 1


class ScriptCall(NamedTuple):
    """One Lua script call, built without I/O: the sync store runs it on its connection
    (:meth:`RedisStore.execute`), the asyncio one on a ``redis.asyncio`` client; ``decode``
    turns the reply into the method's result (or raises its error)."""

    action: str
    script: Script
    keys: list[str]
    args: list[str | bytes | int | float]
    decode: Callable[[Any], Any]


class RedisStore(StoreBase):
    """Job records in Redis, addressed by a ``redis://``, ``rediss://`` or ``unix://`` URL.

    The URL may carry a username, password and database number (``redis://:pw@host:6379/2``,
    ``unix://:pw@/run/redis.sock?db=2``); they never appear in reprs or error messages.
    ``prefix`` namespaces every key. ``max_record_bytes`` is checked before anything is sent.
    Connecting is lazy: an unreachable server raises :class:`StoreConnectionError` on first use,
    after at most ``connect_timeout`` seconds.

    ``redis+sentinel://h1:26379,h2:26379/mymaster/0`` follows the master that Sentinel names;
    ``redis+cluster://h1:7000,h2:7001/`` uses a Redis Cluster, with the prefix made a hash tag
    (``{kq:}``). ``replicas=n`` (or ``?replicas=n&replica_timeout=s`` in the URL) makes every
    record write wait (Redis WAIT) until ``n`` replicas hold it, at most ``replica_timeout``
    seconds, and raise :class:`ReplicationWaitError` (the job is not accepted) when fewer do.
    """

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
        _check_url(url)
        self._redis = _import_redis()
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
        self._hold_connections = pool is not None and pool.max_connections >= _UNLIMITED
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
        """The redis-py client of the URL: one server, a Sentinel master, or a cluster."""
        redis = self._redis
        # No automatic retries: a retried put whose first reply was lost would report a
        # duplicate; the queue decides what to retry.
        no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
        connect_timeout, socket_timeout = self._timeouts
        if self._ha == connect.SENTINEL_SCHEME:
            return connect.sentinel_client(
                self._url,
                connect_timeout=connect_timeout,
                socket_timeout=socket_timeout,
                retry=no_retry,
                aio=False,
            )
        if self._ha == connect.CLUSTER_SCHEME:
            return connect.cluster_client(
                self._url, connect_timeout=connect_timeout, socket_timeout=socket_timeout, aio=False
            )
        return redis.Redis.from_url(
            self._url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=no_retry,
            # redis-py 8 caps a default pool at 100; a URL's max_connections still wins.
            max_connections=_UNLIMITED,
        )

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
        self._scan = client.register_script(scripts.SCAN)
        self._scan_fields = client.register_script(scripts.SCAN_FIELDS)
        self._build_ref_index = client.register_script(scripts.BUILD_REF_INDEX)
        self._put_unique = client.register_script(scripts.PUT_UNIQUE)
        self._release_unique = client.register_script(scripts.RELEASE_UNIQUE)
        self._prune_unique = client.register_script(scripts.PRUNE_UNIQUE)
        self._unique_packed = client.register_script(scripts.PUT_UNIQUE_PACKED)
        self._build_time_index = client.register_script(scripts.BUILD_TIME_INDEX)
        self._scan_unscheduled = client.register_script(scripts.SCAN_UNSCHEDULED)

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
            return self._run_pooled(client, script, keys, args, wait_args)
        self._send_script(conn, script, keys, args)
        return self._read_script(conn, script, keys, args, wait_args)

    @staticmethod
    def _send_script(conn: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
        try:
            if _pack_command is None:
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            else:
                # What redis-py sends with hiredis installed (it packs with hiredis too),
                # without its Python pass over every argument first: the cost is in
                # docs/performance.md (two of these are on every job's way to its handler).
                command = _pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
                conn.send_packed_command([command])
        except BaseException:
            conn.disconnect()  # part of the command may be out: the next call reconnects
            raise

    def _read_script(
        self,
        conn: Any,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        wait_args: tuple[Any, ...] = (),
    ) -> Any:
        errors = self._redis.exceptions
        try:
            try:
                reply = conn.read_response()
            except errors.NoScriptError:
                conn.send_command("SCRIPT", "LOAD", script.script)
                conn.read_response()
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                reply = conn.read_response()
            if wait_args:
                conn.send_command(*wait_args)
                self._check_wait(conn.read_response())
            return reply
        except errors.ResponseError:
            raise  # the connection is still in step: the reply was read
        except BaseException:
            conn.disconnect()  # a reply may be left unread: the next call reconnects
            raise

    def _run_pooled(
        self,
        client: Any,
        script: Script,
        keys: Sequence[str],
        args: Sequence[str | bytes | int | float],
        wait_args: tuple[Any, ...],
    ) -> Any:
        """A script call through the client (a pool with ``max_connections``, or a cluster:
        EVALSHA goes to the node of the keys, EVAL when that node lacks the script)."""
        if wait_args:  # WAIT must follow the write on its connection: one pipeline
            with client.pipeline(transaction=False) as pipe:
                script(keys=keys, args=args, client=pipe)
                pipe.execute_command(*wait_args)
                reply, acked = pipe.execute()
            self._check_wait(acked)
            return reply
        try:
            return client.evalsha(script.sha, len(keys), *keys, *args)
        except self._redis.exceptions.NoScriptError:
            return client.eval(script.script, len(keys), *keys, *args)

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

    def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records atomically in one script call, all or none."""
        call = self.put_many_call(records)
        if call is not None:
            self.execute(call)

    def put_many_call(self, records: Sequence[JobRecord]) -> ScriptCall | None:
        """:meth:`put_many` as a script call (None: nothing to write); checked first."""
        if not records:
            return None
        keys = [record.key for record in records]
        if len(set(keys)) != len(keys):
            raise StoreError("put_many got the same key twice; nothing was written")
        self._check_sizes(records)

        def check(duplicate: Any) -> None:
            if int(duplicate):
                key = records[int(duplicate) - 1].key
                raise StoreError(f"a record with key {key!r} already exists; nothing was written")

        shared = _shared_fields(records)
        if shared is not None:
            args: list[str | bytes | int | float] = [self._prefix, *shared]
            for r in records:
                args += [r.key, r.payload, r.codec]
            script_keys = [self._index, self._type_index(records[0].job_type)]
            return ScriptCall("put", self._put_packed, script_keys, args, check)
        script_keys = [self._index]
        args = [len(records), self._prefix]
        for record in records:
            script_keys += [self._record_key(record.key), self._type_index(record.job_type)]
            fields = _encode_record(record)
            server = "" if record.ref is None else "=" + record.ref.server_id
            args += [record.key, server, len(fields), *fields]
        return ScriptCall("put", self._put_many, script_keys, args, check)

    def put_many_started(self, records: Sequence[JobRecord]) -> Callable[[], None]:
        """:meth:`put_many` sent now on a second connection of this thread; the function
        returned reads its outcome (raising as put_many would). The producer writes its next
        batch so while this batch's puts go out; call the function before the next start
        (one left uncalled has its connection dropped, reply unread)."""
        call = self.put_many_call(records)
        if call is None:
            return _nothing
        wait_args = () if self._wait is None else ("WAIT", *self._wait)
        with self._translate(call.action):
            conn: Any = getattr(self._conn("side"), "connection", None)
            if conn is None:  # nothing held (see _conn): written now
                call.decode(self._run(call.script, keys=call.keys, args=call.args, wait=True))
                return _nothing
            if getattr(self._local, "side_unread", False):
                conn.disconnect()
            self._send_script(conn, call.script, call.keys, call.args)
        self._local.side_unread = True

        def finish() -> None:
            try:
                with self._translate(call.action):
                    reply = self._read_script(conn, call.script, call.keys, call.args, wait_args)
            finally:
                self._local.side_unread = False
            call.decode(reply)

        return finish

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
        import redis.asyncio
        from redis.asyncio.retry import Retry

        connect_timeout, socket_timeout = self._timeouts
        no_retry = Retry(redis.backoff.NoBackoff(), 0)
        if self._ha == connect.SENTINEL_SCHEME:
            return connect.sentinel_client(
                self._url,
                connect_timeout=connect_timeout,
                socket_timeout=socket_timeout,
                retry=no_retry,
                aio=True,
            )
        if self._ha == connect.CLUSTER_SCHEME:
            return connect.cluster_client(
                self._url, connect_timeout=connect_timeout, socket_timeout=socket_timeout, aio=True
            )
        return redis.asyncio.Redis.from_url(
            self._url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=no_retry,
        )

    @property
    def replica_wait(self) -> connect.ReplicaWait | None:
        """The replicas a record write waits for, and how long (None: no wait)."""
        return self._wait

    def check_wait(self, acked: Any) -> None:
        """ReplicationWaitError when WAIT's reply ``acked`` is below the replicas asked for
        (for the asyncio store, which sends WAIT itself)."""
        self._check_wait(acked)

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
        shared = _shared_fields(records)
        if shared is not None:
            return self._put_unique_packed(records, claims, shared, now)
        script_keys: list[str] = [self._index]
        args: list[str | bytes | int | float] = [repr(float(now)), self._prefix, len(records)]
        for record, claim in zip(records, claims, strict=True):
            hash_key = self._record_key(record.key)
            claim_key = hash_key if claim is None else self._claim_key(claim.unique_key)
            script_keys += [hash_key, self._type_index(record.job_type), claim_key]
            fields = _encode_record(record)
            server = "" if record.ref is None else "=" + record.ref.server_id
            args += [record.key, server, *_claim_args(claim, now), len(fields), *fields]
        with self._translate("put_unique"):
            reply: list[Any] = self._run(self._put_unique, keys=script_keys, args=args, wait=True)
        return _holders(records, reply)

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
            args += [record.key, record.payload, record.codec, unique_key, *_claim_args(claim, now)]
        script_keys = [self._index, self._type_index(records[0].job_type)]
        with self._translate("put_unique"):
            reply: list[Any] = self._run(
                self._unique_packed, keys=script_keys, args=args, wait=True
            )
        return _holders(records, reply)

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

    def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """The status of the records that exist among ``keys``, in one script call.

        The script answers with one string (a line per key), which is far cheaper to read
        than a reply of many parts.
        """
        call = self.get_status_many_call(keys)
        return {} if call is None else cast("dict[str, RecordStatus]", self.execute(call))

    def get_status_many_call(self, keys: Sequence[str]) -> ScriptCall | None:
        """:meth:`get_status_many` as a script call (None: no keys)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return None

        def decode(reply: bytes) -> dict[str, RecordStatus]:
            return {
                key: _status_of(line)
                for key, line in zip(unique, reply.split(b"\n"), strict=True)
                if line != b"-"
            }

        script_keys = [self._record_key(key) for key in unique]
        return ScriptCall("get_status_many", self._status_many, script_keys, [], decode)

    def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        """See :meth:`StoreBase.get_checked_many`: one script call, whatever the records
        name (the whole records of those naming another reference come in the same reply)."""
        call = self.get_checked_many_call(expected)
        return (
            {} if call is None else cast("dict[str, JobRecord | RecordStatus]", self.execute(call))
        )

    def get_checked_many_call(self, expected: Sequence[tuple[str, BrokerRef]]) -> ScriptCall | None:
        """:meth:`get_checked_many` as a script call (None: no keys)."""
        refs: dict[str, BrokerRef] = {}
        for key, ref in expected:
            refs.setdefault(key, ref)
        if not refs:
            return None
        unique = list(refs)

        def decode(replies: list[bytes | list[bytes]]) -> dict[str, JobRecord | RecordStatus]:
            found: dict[str, JobRecord | RecordStatus] = {}
            for key, reply in zip(unique, replies, strict=True):
                if isinstance(reply, list):
                    found[key] = _decode_record(key, _pairs(reply))
                elif reply != b"-":
                    found[key] = _status_of(reply)
            return found

        script_keys = [self._record_key(key) for key in unique]
        args: list[str | bytes | int | float] = []
        for ref in refs.values():
            args += [ref.server_id, str(ref.job_id)]
        return ScriptCall("get_checked_many", self._checked_many, script_keys, args, decode)

    def get(self, key: str) -> JobRecord | None:
        """The record with this key, or None."""
        with self._translate("get"):
            fields = cast("dict[bytes, bytes]", self._conn().hgetall(self._record_key(key)))
        return _decode_record(key, fields) if fields else None

    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The records that exist among ``keys``, by key, in one script call."""
        call = self.get_many_call(keys)
        return {} if call is None else cast("dict[str, JobRecord]", self.execute(call))

    def get_many_call(self, keys: Sequence[str]) -> ScriptCall | None:
        """:meth:`get_many` as a script call (None: no keys)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return None

        def decode(replies: list[list[bytes]]) -> dict[str, JobRecord]:
            return {
                key: _decode_record(key, _pairs(flat))
                for key, flat in zip(unique, replies, strict=True)
                if flat
            }

        script_keys = [self._record_key(key) for key in unique]
        return ScriptCall("get_many", self._get_many, script_keys, [], decode)

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove several records atomically in one script call; the number that existed."""
        call = self.delete_many_call(keys)
        return 0 if call is None else int(self.execute(call))

    def delete_many_call(self, keys: Iterable[str]) -> ScriptCall | None:
        """:meth:`delete_many` as a script call (None: no keys)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return None
        script_keys = [self._index, *(self._record_key(key) for key in unique)]
        return ScriptCall("delete", self._delete_many, script_keys, [self._prefix, *unique], int)

    def swap_reference(
        self, key: str, expected: BrokerRef | None, new: BrokerRef | None, *, now: float
    ) -> bool:
        """Compare-and-set the broker reference in one script; see :meth:`Store.swap_reference`."""
        args = [*_ref_args(expected), *_ref_args(new), repr(float(now)), self._prefix, key]
        with self._translate("swap_reference"):
            return int(self._run(self._swap, keys=[self._record_key(key)], args=args)) == 1

    def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """Compare-and-set several references in one script call; the number that succeeded."""
        call = self.swap_references_call(swaps, now=now)
        return 0 if call is None else int(self.execute(call))

    def swap_references_call(self, swaps: Sequence[RefSwap], *, now: float) -> ScriptCall | None:
        """:meth:`swap_references` as a script call (None: no swaps)."""
        if not swaps:
            return None
        script_keys = [self._record_key(key) for key, _, _ in swaps]
        server = one_new_server(swaps)
        args: list[str | bytes | int | float] = [repr(float(now)), self._prefix]
        if server is not None:
            # New jobs (add_jobs): one job id a key instead of six values.
            job_ids = [new.job_id for _, _, new in swaps if new is not None]
            args = [server, *args, *job_ids]
            return ScriptCall("swap_references", self._set_new_refs, script_keys, args, int)
        pair = one_server_pair(swaps)
        if pair is not None:
            # Recovery's shapes: two job ids a key instead of six values.
            args += [*pair]
            for _, expected, new in swaps:
                assert expected is not None and new is not None
                args += [expected.job_id, new.job_id]
            return ScriptCall("swap_references", self._swap_between, script_keys, args, int)
        for _, expected, new in swaps:
            args += [*_ref_args(expected), *_ref_args(new)]
        return ScriptCall("swap_references", self._swap_many, script_keys, args, int)

    def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """Store the attempt count, last error and state; False if the record is gone."""
        call = self.record_attempt_call(
            key, attempts=attempts, last_error=last_error, state=state, now=now
        )
        return bool(self.execute(call))

    def record_attempt_call(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> ScriptCall:
        """:meth:`record_attempt` as a script call."""
        error: list[str | bytes] = (
            ["0", ""]
            if last_error is None
            else ["1", last_error.encode("utf-8", "backslashreplace")]
        )
        args: list[str | bytes | int | float] = [attempts, *error, state, repr(float(now))]
        script_keys = [self._record_key(key)]
        return ScriptCall("record_attempt", self._attempt, script_keys, args, _is_one)

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
        """Store the attempt and append ``failure`` to the history, in one script."""
        error: list[str | bytes] = (
            ["0", ""]
            if last_error is None
            else ["1", last_error.encode("utf-8", "backslashreplace")]
        )
        entry = encode_failures([failure])[1:-1].encode("utf-8", "backslashreplace")
        args = [attempts, *error, state, repr(float(now)), entry, MAX_FAILURES]
        with self._translate("record_failure"):
            return int(self._run(self._failure, keys=[self._record_key(key)], args=args)) == 1

    def get_failures(self, key: str) -> list[AttemptFailure]:
        """The record's failure history, oldest first (the hash's ``failure:<n>`` fields)."""
        hash_key = self._record_key(key)
        with self._translate("get_failures"):
            seq = self._conn().hget(hash_key, "failure_seq")
            if seq is None:
                return []
            last = int(seq)
            names = [f"failure:{n}" for n in range(max(1, last - MAX_FAILURES + 1), last + 1)]
            values = cast("list[bytes | None]", self._conn().hmget(hash_key, names))
        entries = b",".join(value for value in values if value is not None)
        return decode_failures(b"[" + entries + b"]")

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
                records.append(_decode_record(raw_key.decode(), _pairs(flat)))
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
        args: list[str | int] = [lower, limit, self._prefix + "r:", *_FIELD_ORDER]
        with self._translate("scan_referencing"):
            reply: list[Any] = self._run(self._scan_fields, keys=[index], args=args)
        return [
            _record_from_values(raw_key.decode(), values)
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
        args += _FIELD_ORDER
        with self._translate("scan_unscheduled"):
            reply: list[Any] = self._run(
                self._scan_unscheduled, keys=[self._prefix + "ut"], args=args
            )
        return [
            _record_from_values(raw_key.decode(), values)
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
