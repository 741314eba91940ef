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

The store's parts are private modules beside this one: ``_redis_core`` (clients, held
connections, error translation, running a script), ``_redis_client`` (making a client),
``_redis_wire`` (sending and reading a script call), ``_redis_codec`` (records to hash fields
and back), the Lua in ``_redis_scripts``, ``_redis_scripts_unique`` and
``_redis_scripts_scans``, and the operations in ``_redis_records``, ``_redis_unique``,
``_redis_scans`` and ``_redis_meta``.
"""

from __future__ import annotations

from kqueue.stores._redis_core import DEFAULT_MAX_RECORD_BYTES, MAX_BATCH_BYTES
from kqueue.stores._redis_meta import RedisMeta
from kqueue.stores._redis_records import RedisRecords
from kqueue.stores._redis_scans import RedisScans
from kqueue.stores._redis_unique import RedisUnique
from kqueue.stores._redis_wire import ScriptCall

__all__ = ["DEFAULT_MAX_RECORD_BYTES", "MAX_BATCH_BYTES", "RedisStore", "ScriptCall"]


class RedisStore(RedisRecords, RedisUnique, RedisScans, RedisMeta):
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
