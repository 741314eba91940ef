"""Redis stores beyond one server: Sentinel and Cluster URLs, and the replication wait.

The store contract runs against both topologies too (tests/contract, kinds redis-sentinel and
redis-cluster); these tests are about what only they do.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import greenstalk
import pytest

from kqueue import KQueue, ReplicationWaitError
from kqueue.aio.stores import AsyncRedisStore
from kqueue.errors import ConfigurationError, StoreConnectionError, StoreOutcomeUnknownError
from kqueue.stores import open_store
from kqueue.stores.redis import RedisStore
from tests.contract.records import make_record
from tests.redis_servers import Cluster, SentinelSet
from tests.servers import BeanstalkdProcess, free_port


def _prefix() -> str:
    return f"kqtest:{uuid.uuid4().hex[:12]}:"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+sentinel://127.0.0.1:26379/", "name the Sentinel service"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/x", "name the Sentinel service"),
        ("redis+sentinel://127.0.0.1/mymaster", "host:port"),
        ("redis+sentinel://127.0.0.1:26379,h2:0/mymaster", "host:port"),
        ("redis+sentinel://127.0.0.1:26379/mymaster?sentinel_pasword=x", "sentinel_pasword"),
        ("redis+cluster://127.0.0.1:7000/1", "database 0 only"),
        ("redis+cluster://127.0.0.1:7000/?db=1", "unknown parameter(s) db"),
        ("redis+cluster://127.0.0.1:7000/?replicas=1", "redis+sentinel"),
        ("redis://127.0.0.1:6379/0?replicas=x", "replicas= takes a whole number"),
        ("redis://127.0.0.1:6379/0?replicas=1&replica_timeout=0", "replica_timeout positive"),
        ("redis://127.0.0.1:6379/0?replicas=-1", "replica_timeout positive"),
    ],
)
def test_malformed_sentinel_cluster_and_wait_urls_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(complaint)):
        open_store(url)


def test_a_password_never_shows_in_a_sentinel_store_or_its_errors() -> None:
    store = open_store(f"redis+sentinel://:s3cret@127.0.0.1:{free_port()}/mymaster")
    assert "s3cret" not in repr(store)
    with pytest.raises(StoreConnectionError) as caught:
        store.count()
    assert "s3cret" not in str(caught.value)


def test_a_cluster_store_connects_lazily_and_says_when_it_cannot() -> None:
    store = RedisStore(f"redis+cluster://127.0.0.1:{free_port()}/", connect_timeout=0.5)
    assert store.prefix == "{kq:}"  # nothing reached yet: made lazily
    with pytest.raises(StoreConnectionError, match="Redis Cluster"):
        store.count()
    store.close()


def test_a_sentinel_store_writes_to_the_master_and_the_replica_gets_it(
    redis_sentinel: SentinelSet,
) -> None:
    prefix = _prefix()
    store = open_store(redis_sentinel.url(query=f"prefix={prefix}&replicas=1&replica_timeout=5"))
    assert isinstance(store, RedisStore) and store.replica_wait is not None
    store.put_many([make_record("a"), make_record("b")])
    # The wait returned: the replica holds both records already, no polling needed.
    replica = redis_sentinel.by_port(redis_sentinel.replica_port())
    assert replica is not None
    client = replica.client()
    try:
        assert client.zcard(prefix + "idx") == 2
        assert client.hget(prefix + "r:a", "job_type") == b"email"
    finally:
        client.close()
    store.close()


def test_too_few_replicas_raise_a_typed_error_and_leave_the_record_unreferenced(
    redis_sentinel: SentinelSet, beanstalkd: BeanstalkdProcess, client: greenstalk.Client[bytes]
) -> None:
    # Two replicas asked for, one exists: every write waits 100 ms and is refused.
    url = redis_sentinel.url(query=f"prefix={_prefix()}&replicas=2&replica_timeout=0.1")
    queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=url)
    with pytest.raises(ReplicationWaitError, match="only 1 of the 2 replica") as caught:
        queue.add_job("email", {"to": "a@example.com"})
    assert isinstance(caught.value, StoreOutcomeUnknownError) and len(caught.value.keys) == 1
    # Nothing reached beanstalkd; the record stays on the master, with no reference (the
    # sweeper's to deliver if the master lives on; gone if a failover drops it).
    assert client.stats()["current-jobs-ready"] == 0
    assert queue.store is not None
    record = queue.store.get(caught.value.keys[0])
    assert record is not None and record.ref is None
    queue.close()


def test_the_wait_on_a_single_server_without_replicas_refuses(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=_prefix(), replicas=1, replica_timeout=0.05)
    with pytest.raises(ReplicationWaitError):
        store.put_many([make_record("a")])
    with pytest.raises(ReplicationWaitError):
        store.put_unique([make_record("b")], [None], now=0.0)
    store.delete_many(["a", "b"])
    store.close()


def test_the_async_store_waits_for_replicas_too(redis_sentinel: SentinelSet) -> None:
    ok = AsyncRedisStore(RedisStore(redis_sentinel.url(), prefix=_prefix(), replicas=1))
    short = AsyncRedisStore(
        RedisStore(redis_sentinel.url(), prefix=_prefix(), replicas=2, replica_timeout=0.05)
    )

    async def run() -> None:
        await ok.put_many([make_record("a")])
        with pytest.raises(ReplicationWaitError):
            await short.put_many([make_record("a")])
        assert await short.get_many(["a"])  # written on the master all the same
        for access in (ok, short):
            await access.aclose()
            access.sync.close()

    asyncio.run(run())


def test_a_cluster_store_keeps_every_key_in_one_slot(redis_cluster: Cluster) -> None:
    store = open_store(redis_cluster.url(query="prefix=app:"))
    assert isinstance(store, RedisStore) and store.prefix == "{app:}"
    store.put_many([make_record(f"k{i}", job_type=f"t{i % 3}") for i in range(30)])
    assert store.delete_many([f"k{i}" for i in range(10)]) == 10
    slots = set()
    for node in redis_cluster.nodes:
        client = node.client()
        try:
            for key in client.scan_iter(match="{app:}*"):
                slots.add(client.cluster("keyslot", key))
        finally:
            client.close()
    assert len(slots) == 1
    assert store.count() == 20
    store.delete_many([f"k{i}" for i in range(30)])
    store.close()


def test_a_cluster_prefix_with_a_hash_tag_stays_and_a_stray_brace_is_refused(
    redis_cluster: Cluster,
) -> None:
    tagged = RedisStore(redis_cluster.url(), prefix="{q7}:jobs:")
    assert tagged.prefix == "{q7}:jobs:"
    tagged.close()
    with pytest.raises(ConfigurationError, match="brace"):
        RedisStore(redis_cluster.url(), prefix="app{:")
