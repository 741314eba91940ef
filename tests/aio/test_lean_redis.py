"""The lean asyncio Redis connection of the async store (kqueue.aio.resp), on the real Redis:
pipelined replies in order, a cancelled waiter's reply dropped, a lost script loaded again, a
silent server timed out, a killed connection reopened, and the settings it leaves to
redis-py."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
import redis.asyncio

from kqueue.aio.resp import LeanRedisConnection, lean_connection
from kqueue.aio.stores import AsyncRedisStore
from kqueue.errors import StoreConnectionError
from kqueue.stores.redis import RedisStore, ScriptCall

pytestmark = pytest.mark.asyncio


def _lean(url: str, **settings: object) -> LeanRedisConnection:
    conn = lean_connection(redis.asyncio.Redis.from_url(url, **settings))  # type: ignore[arg-type]
    assert conn is not None
    return conn


async def test_concurrent_calls_share_one_socket_and_get_their_own_replies(
    redis_url: str, redis_prefix: str
) -> None:
    conn = _lean(redis_url)
    key = f"{redis_prefix}n"
    replies = await asyncio.gather(*(conn.call("INCR", key) for _ in range(200)))
    assert sorted(replies) == list(range(1, 201))
    ids = await asyncio.gather(*(conn.call("CLIENT", "ID") for _ in range(5)))
    assert len(set(ids)) == 1
    conn.close()


async def test_a_cancelled_call_leaves_the_replies_in_step(
    redis_url: str, redis_prefix: str
) -> None:
    conn = _lean(redis_url)
    blocked = asyncio.ensure_future(conn.call("BLPOP", f"{redis_prefix}empty", 0.2))
    following = asyncio.ensure_future(conn.call("INCR", f"{redis_prefix}n"))
    await asyncio.sleep(0.05)
    blocked.cancel()
    assert await following == 1  # not BLPOP's nil
    assert await conn.call("INCR", f"{redis_prefix}n") == 2
    conn.close()


async def test_an_error_reply_raises_and_the_connection_stays_usable(redis_url: str) -> None:
    conn = _lean(redis_url)
    with pytest.raises(redis.exceptions.ResponseError):
        await conn.call("NOSUCHCOMMAND")
    assert await conn.call("PING") == b"PONG"
    conn.close()


async def test_a_script_redis_does_not_hold_is_loaded_and_run(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    script = store.client.register_script(f"return ARGV[1] -- {uuid.uuid4().hex}")
    aio = AsyncRedisStore(store)
    reply = await aio._execute(ScriptCall("echo", script, [], ["hello"], lambda r: r))
    assert reply == b"hello" and aio._lean is not None
    await aio.aclose()
    store.close()


async def test_a_silent_server_times_out_and_fails_what_is_in_flight() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(5)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = _lean(f"redis://127.0.0.1:{port}/0", socket_timeout=0.2)
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(conn.call("PING"), conn.call("PING"), return_exceptions=True)
    assert all(isinstance(r, redis.exceptions.TimeoutError) for r in results)
    assert asyncio.get_running_loop().time() - started < 2
    server.close()


async def test_a_killed_connection_is_opened_again(redis_url: str) -> None:
    conn = _lean(redis_url)
    first = await conn.call("CLIENT", "ID")
    admin = redis.Redis.from_url(redis_url)
    admin.client_kill_filter(_id=first)
    admin.close()
    await asyncio.sleep(0.1)  # the loop sees the close
    assert await conn.call("CLIENT", "ID") != first
    conn.close()


async def test_wrong_credentials_fail_as_a_connection_error_without_the_password(
    redis_url: str, redis_prefix: str
) -> None:
    url = redis_url.replace("redis://", "redis://:s3cret-pw@", 1)
    store = RedisStore(url, prefix=redis_prefix)
    aio = AsyncRedisStore(store)
    with pytest.raises(StoreConnectionError) as caught:
        await aio.get_many(["k"])
    assert "s3cret-pw" not in str(caught.value)
    await aio.aclose()
    store.close()


async def test_settings_it_does_not_honour_are_left_to_redis_py() -> None:
    assert lean_connection(redis.asyncio.Redis.from_url("rediss://h/0")) is None
    assert lean_connection(redis.asyncio.Redis.from_url("redis://h/0", protocol=3)) is None
    unix = lean_connection(redis.asyncio.Redis.from_url("unix://:pw@/run/r.sock?db=2"))
    assert unix is not None and unix.settings["path"] == "/run/r.sock"
    tcp = lean_connection(redis.asyncio.Redis.from_url("redis://u:pw@h:1/2"))
    assert tcp is not None
    assert {k: tcp.settings[k] for k in ("host", "port", "db", "username", "password")} == {
        "host": "h",
        "port": 1,
        "db": 2,
        "username": "u",
        "password": "pw",
    }


async def test_a_store_with_other_settings_goes_through_redis_py(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(f"{redis_url}?health_check_interval=30", prefix=redis_prefix)
    aio = AsyncRedisStore(store)
    assert await aio.get_many(["k"]) == {} and aio._lean is None
    await aio.aclose()
    store.close()
