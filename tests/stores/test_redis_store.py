"""RedisStore specifics: URLs, key layout, limits, and errors without secrets."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from kqueue.errors import (
    ConfigurationError,
    RecordTooLargeError,
    StoreConnectionError,
    StoreError,
)
from kqueue.stores.base import BrokerRef
from kqueue.stores.redis import RedisStore
from tests.contract.records import make_record
from tests.servers import free_port, missing_service


@pytest.fixture
def redis_store(redis_url: str, redis_prefix: str) -> Iterator[RedisStore]:
    with RedisStore(redis_url, prefix=redis_prefix) as store:
        yield store


def test_tcp_url_gives_host_port_password_and_db() -> None:
    store = RedisStore("redis://alice:secret@cache.example:6380/3")
    kwargs = store.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 3)
    assert (kwargs["username"], kwargs["password"]) == ("alice", "secret")
    assert kwargs["socket_connect_timeout"] == 5.0


def test_rediss_url_uses_tls() -> None:
    store = RedisStore("rediss://:secret@cache.example:6390/1")
    pool = store.client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (1, "secret")


def test_unix_url_gives_socket_path_password_and_db() -> None:
    store = RedisStore("unix://:secret@/run/redis/redis.sock?db=2")
    pool = store.client.connection_pool
    assert pool.connection_class is redis.UnixDomainSocketConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["path"], kwargs["db"], kwargs["password"]) == (
        "/run/redis/redis.sock",
        2,
        "secret",
    )


def test_repr_hides_the_password() -> None:
    store = RedisStore("redis://:secret@host/0")
    assert "secret" not in repr(store)
    assert "redis://:***@host/0" in repr(store)


@pytest.mark.parametrize("url", ["redis://host:notaport/0", "sqlite:///x.db"])
def test_a_bad_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        RedisStore(url)


def test_unreachable_redis_fails_fast_with_a_redacted_address() -> None:
    port = free_port()
    store = RedisStore(f"redis://:secret@127.0.0.1:{port}/0")
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as caught:
        store.get("k1")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "secret" not in message
    assert isinstance(caught.value.__cause__, redis.ConnectionError)


def test_record_over_max_record_bytes_is_refused_and_nothing_is_written(
    redis_url: str, redis_prefix: str
) -> None:
    with RedisStore(redis_url, prefix=redis_prefix, max_record_bytes=1000) as store:
        with pytest.raises(RecordTooLargeError):
            store.put_many([make_record("small"), make_record("big", payload=b"x" * 1001)])
        assert store.count() == 0
        assert store.get("small") is None
        store.put(make_record("fits", payload=b"x" * 1000))


def test_a_record_is_one_hash_with_raw_payload_and_three_index_entries(
    redis_store: RedisStore,
) -> None:
    prefix, client = redis_store.prefix, redis_store.client
    redis_store.put(make_record("k1", job_type="email", payload=b"\x00\xff"))
    keys = {key.decode() for key in client.scan_iter(match=prefix + "*")}
    # u: records without a reference, ut the same by time; refidx and utidx mark a store
    # indexed by server and by time from the start
    expected = {f"{prefix}r:k1", f"{prefix}idx", f"{prefix}t:email", f"{prefix}u", f"{prefix}ut"}
    markers = {f"{prefix}refidx", f"{prefix}utidx"}
    assert keys == expected | markers
    assert client.zrange(f"{prefix}ut", 0, -1, withscores=True) == [(b"k1", 1_700_000_000.25)]
    assert client.type(f"{prefix}r:k1") == b"hash"
    assert client.hget(f"{prefix}r:k1", "payload") == b"\x00\xff"
    assert client.zrange(f"{prefix}idx", 0, -1, withscores=True) == [(b"k1", 0.0)]
    redis_store.swap_reference("k1", None, BrokerRef("s1", 5), now=1.0)
    keys = {key.decode() for key in client.scan_iter(match=prefix + "*")}
    assert f"{prefix}s:s1" in keys and f"{prefix}u" not in keys and f"{prefix}ut" not in keys
    assert client.smembers(f"{prefix}servers") == {b"s1"}
    redis_store.delete("k1")
    assert {key.decode() for key in client.scan_iter(match=prefix + "*")} == markers


def test_records_written_before_the_server_index_are_indexed_once(
    redis_store: RedisStore, redis_url: str
) -> None:
    prefix, client = redis_store.prefix, redis_store.client
    redis_store.put_many([make_record("a"), make_record("b", ref=BrokerRef("old", 1))])
    # As an older kqueue left them: no by-server index, no marker.
    client.delete(f"{prefix}u", f"{prefix}s:old", f"{prefix}servers", f"{prefix}refidx")
    reopened = RedisStore(redis_url, prefix=prefix)
    try:
        assert reopened.referenced_servers() == {"old"}
        assert [r.key for r in reopened.scan_referencing(None)] == ["a"]
        assert [r.key for r in reopened.scan_referencing("old")] == ["b"]
    finally:
        reopened.close()


def test_records_written_before_the_time_index_are_indexed_once(
    redis_store: RedisStore, redis_url: str
) -> None:
    prefix, client = redis_store.prefix, redis_store.client
    redis_store.put_many([make_record("a", updated_at=5.0), make_record("b", updated_at=4.0)])
    redis_store.put(make_record("c", ref=BrokerRef("s1", 1)))
    # As a kqueue with the by-server index but not the one by time left them.
    client.delete(f"{prefix}ut", f"{prefix}utidx")
    reopened = RedisStore(redis_url, prefix=prefix)
    try:
        assert [r.key for r in reopened.scan_unscheduled(before=10.0)] == ["b", "a"]
        assert client.exists(f"{prefix}utidx")
    finally:
        reopened.close()


def test_an_entry_of_the_time_index_whose_record_moved_is_skipped(
    redis_store: RedisStore,
) -> None:
    prefix, client = redis_store.prefix, redis_store.client
    redis_store.put_many([make_record("a", updated_at=5.0), make_record("b", updated_at=6.0)])
    # An older kqueue, not keeping the index by time, scheduled "a" and deleted "b".
    client.hset(f"{prefix}r:a", mapping={"ref_server": "s1", "ref_job": 1})
    client.delete(f"{prefix}r:b")
    client.zadd(f"{prefix}ut", {"c": 7.0})
    redis_store.put(make_record("c", updated_at=7.0))
    assert [r.key for r in redis_store.scan_unscheduled(before=10.0, limit=1)] == ["c"]


def test_suspensions_live_in_a_set(redis_store: RedisStore) -> None:
    redis_store.set_suspended("email", True)
    assert redis_store.client.type(f"{redis_store.prefix}suspended") == b"set"


def test_stores_with_different_prefixes_do_not_see_each_other(
    redis_url: str, redis_prefix: str
) -> None:
    with (
        RedisStore(redis_url, prefix=redis_prefix + "a:") as first,
        RedisStore(redis_url, prefix=redis_prefix + "b:") as second,
    ):
        first.put(make_record("k1"))
        assert second.get("k1") is None
        assert (first.count(), second.count()) == (1, 0)


def test_a_refused_password_is_a_connection_error_without_the_password(redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://no-such-user:hunter2-secret@", 1)
    with RedisStore(url) as store, pytest.raises(StoreConnectionError) as caught:
        store.count()
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(store)


def _with_query(url: str, parameter: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{parameter}"


def _connections_named(client: redis.Redis, name: str) -> int:
    return sum(1 for entry in client.client_list() if entry.get("name") == name)


def test_a_thread_holds_one_connection_and_returns_it_when_it_ends(
    redis_url: str, redis_prefix: str
) -> None:
    name = f"kq-held-{redis_prefix.strip(':')}"
    store = RedisStore(_with_query(redis_url, f"client_name={name}"), prefix=redis_prefix)
    observer = redis.Redis.from_url(redis_url)
    try:
        for index in range(20):  # one after the other: each thread's connection is reused
            thread = threading.Thread(target=store.put, args=(make_record(f"k{index:03d}"),))
            thread.start()
            thread.join()
        assert store.count() == 20
        assert _connections_named(observer, name) <= 2

        def busy() -> None:
            for _ in range(50):
                store.get("k000")

        threads = [threading.Thread(target=busy) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 1 <= _connections_named(observer, name) <= 5
    finally:
        store.close()
        # close() gave back and closed every held connection (the server notices within ms)
        deadline = time.monotonic() + 3.0
        while (left := _connections_named(observer, name)) and time.monotonic() < deadline:
            time.sleep(0.02)
        observer.close()
    assert left == 0


def test_a_forked_child_opens_its_own_connection(redis_store: RedisStore) -> None:
    if not hasattr(os, "fork"):
        missing_service("os.fork (this platform has none)")
    redis_store.put(make_record("parent"))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own connection, never the parent's socket
        try:
            redis_store.put(make_record("child"))
            found = redis_store.get("parent") is not None
            os.write(write, b"ok" if found else b"no")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 2) == b"ok"
    os.waitpid(pid, 0)
    os.close(read)
    assert redis_store.get("child") is not None
    assert redis_store.count() == 2


def test_scripts_flushed_from_the_server_are_loaded_again(redis_store: RedisStore) -> None:
    redis_store.put(make_record("before"))
    redis_store.client.script_flush()  # as after a Redis restart
    redis_store.put(make_record("after"))
    assert redis_store.get_status_many(["before", "after"]).keys() == {"before", "after"}
    assert redis_store.delete_many(["before", "after"]) == 2


def test_a_script_error_leaves_the_connection_usable(redis_store: RedisStore) -> None:
    redis_store.client.set(redis_store.prefix + "r:clash", "not a hash")
    with pytest.raises(StoreError):
        redis_store.get_status_many(["clash"])  # HMGET on a string: WRONGTYPE
    redis_store.put(make_record("fine"))
    assert redis_store.get("fine") == make_record("fine")


def test_a_held_connection_the_server_closed_is_reopened_not_failed(
    redis_url: str, redis_prefix: str
) -> None:
    name = f"kq-killed-{redis_prefix.strip(':')}"
    with RedisStore(_with_query(redis_url, f"client_name={name}"), prefix=redis_prefix) as store:
        store.put(make_record("k1"))
        with redis.Redis.from_url(redis_url) as admin:
            ids = [c["id"] for c in admin.client_list() if c.get("name") == name]
            assert ids, "the test meant to kill the store's held connection"
            for client_id in ids:
                admin.client_kill_filter(_id=client_id)
        time.sleep(0.05)  # as after a Redis restart or an idle timeout
        assert store.get("k1") == make_record("k1")
        assert store.get_status_many(["k1"])["k1"].attempts == 0
        store.put(make_record("k2"))
        assert store.count() == 2


def test_one_connection_is_enough_for_one_thread(redis_url: str, redis_prefix: str) -> None:
    with RedisStore(_with_query(redis_url, "max_connections=1"), prefix=redis_prefix) as store:
        store.put_many([make_record("a"), make_record("b")])
        assert store.get("a") == make_record("a")
        assert set(store.get_many(["a", "b", "gone"])) == {"a", "b"}
        assert store.delete_many(["a", "b"]) == 2


def test_a_closed_store_refuses_calls_with_a_store_error(redis_store: RedisStore) -> None:
    redis_store.put(make_record("k1"))
    redis_store.close()
    with pytest.raises(StoreError, match="closed"):
        redis_store.get("k1")


def test_a_started_write_is_durable_when_finished_and_fails_then(
    redis_store: RedisStore,
) -> None:
    finish = redis_store.put_many_started([make_record("a"), make_record("b")])
    finish()
    assert set(redis_store.get_many(["a", "b"])) == {"a", "b"}
    again = redis_store.put_many_started([make_record("c"), make_record("a")])
    with pytest.raises(StoreError, match="already exists"):
        again()
    assert redis_store.get("c") is None  # all or none


def test_a_started_write_left_unread_never_answers_the_next(redis_store: RedisStore) -> None:
    redis_store.put(make_record("taken"))
    redis_store.put_many_started([make_record("taken")])  # fails, its reply never read
    finish = redis_store.put_many_started([make_record("next")])
    finish()  # its own reply: no "already exists" from the write before
    assert redis_store.get("next") == make_record("next")


def test_a_started_write_without_held_connections_is_written_at_once(
    redis_url: str, redis_prefix: str
) -> None:
    with RedisStore(_with_query(redis_url, "max_connections=1"), prefix=redis_prefix) as store:
        finish = store.put_many_started([make_record("a")])
        assert store.get("a") == make_record("a")
        finish()


def test_the_pool_has_no_limit_unless_the_url_sets_one(redis_url: str) -> None:
    # redis-py 8 caps a default pool at 100 connections; a store's pool has none (each
    # thread holds one connection), unless the URL asks for a limit.
    assert RedisStore(redis_url).client.connection_pool.max_connections >= 2**31
    limited = RedisStore(_with_query(redis_url, "max_connections=5"))
    assert limited.client.connection_pool.max_connections == 5
