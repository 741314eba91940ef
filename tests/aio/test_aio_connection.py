"""The asyncio beanstalkd connection: the sync one's commands, pipelined, errors translated."""

from __future__ import annotations

import asyncio

import greenstalk
import pytest

from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.aio_connection import AsyncBeanstalkConnection
from kqueue.errors import BrokerConnectionError, JobTooBigError
from tests.servers import BeanstalkdProcess

pytestmark = pytest.mark.asyncio


def _conn(server: BeanstalkdProcess) -> AsyncBeanstalkConnection:
    return AsyncBeanstalkConnection(server.host, server.port, command_timeout=5.0)


async def test_puts_from_many_coroutines_share_one_connection_in_order(
    beanstalkd: BeanstalkdProcess, client: greenstalk.Client[bytes]
) -> None:
    # Given one connection using a tube
    conn = _conn(beanstalkd)
    await conn.run(cmd.use("aio"))
    # When 200 coroutines put a job each at once (their commands pipelined)
    bodies = [b"job-%d" % n for n in range(200)]
    ids = await asyncio.gather(
        *(conn.run(cmd.put(body, priority=1, delay=0, ttr=30)) for body in bodies)
    )
    await conn.aclose()
    # Then every put got its own id, and the jobs are in the tube in the order written
    assert len(set(ids)) == 200
    client.watch("aio")
    assert [client.reserve(timeout=0).body for _ in bodies] == bodies


async def test_a_pipeline_settles_each_command_and_an_error_fails_only_its_own(
    beanstalkd: BeanstalkdProcess,
) -> None:
    # Given a connection and a body over the server's max job size
    conn = _conn(beanstalkd)
    too_big = b"x" * ((await conn.server_stats())["max-job-size"] + 1)
    # When a burst of puts carries it in the middle
    calls = [cmd.use("burst")] + [
        cmd.put(body, priority=1, delay=0, ttr=30) for body in (b"a", too_big, b"c")
    ]
    pending = await conn.pipeline(calls)
    # Then the puts around it went through, and it alone failed with JOB_TOO_BIG
    assert pending[1].result() > 0 and pending[3].result() > pending[1].result()
    assert isinstance(pending[2].error, JobTooBigError)
    stats = await conn.run(cmd.stats_tube("burst"))
    assert stats is not None and stats["current-jobs-ready"] == 2
    await conn.aclose()


async def test_reserve_waits_then_the_tubes_survive_a_broker_restart(
    beanstalkd: BeanstalkdProcess, client: greenstalk.Client[bytes]
) -> None:
    # Given a connection watching a tube, with nothing ready
    conn = _conn(beanstalkd)
    await conn.run(cmd.watch("work"))
    assert await conn.reserve(0) is None
    # When the broker restarts empty and a job is put into the tube
    first = await conn.server_id()
    beanstalkd.restart(binlog_dir=None)
    with greenstalk.Client(beanstalkd.address, use="work", encoding=None) as fresh:
        fresh.put(b"after")
    # Then a reserve gets it on a new connection, watching the tube again (one command may
    # still meet the old socket, if its close was not read yet: it fails, and says so)
    try:
        job = await conn.reserve(1)
    except BrokerConnectionError:
        job = await conn.reserve(1)
    assert job is not None and job.body == b"after"
    assert await conn.server_id() != first
    await conn.aclose()


async def test_cancelling_a_reserve_closes_the_connection_and_loses_no_job(
    beanstalkd: BeanstalkdProcess, client: greenstalk.Client[bytes]
) -> None:
    # Given a coroutine blocked in a reserve
    conn = _conn(beanstalkd)
    await conn.run(cmd.watch("idle"))
    waiting = asyncio.ensure_future(conn.reserve(30))
    await asyncio.sleep(0.05)
    # When it is cancelled
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # Then the connection is closed, and a job put now is ready for anyone
    assert not conn.connected
    client.use("idle")
    job_id = client.put(b"x")
    assert client.stats_job(job_id)["state"] == "ready"


async def test_the_watch_list_keeps_its_order_through_watches_ignores_and_a_restart(
    beanstalkd: BeanstalkdProcess,
) -> None:
    # Given a connection that watches 60 tubes (one twice), then ignores default and a third
    conn = _conn(beanstalkd)
    tubes = [f"w{n:02d}" for n in range(60)]
    await conn.pipeline([cmd.watch(tube) for tube in [*tubes, "w05"]])
    await conn.pipeline([cmd.ignore("default")] + [cmd.ignore(tube) for tube in tubes[::3]])
    kept = [tube for n, tube in enumerate(tubes) if n % 3]
    assert conn.watched == kept
    # When the broker restarts, then a job goes into a kept tube and one into an ignored tube
    beanstalkd.restart(binlog_dir=None)
    with greenstalk.Client(beanstalkd.address, encoding=None) as fresh:
        fresh.use("w00")
        fresh.put(b"ignored")
        fresh.use(kept[-1])
        fresh.put(b"kept")
    # Then the new connection watches the same tubes: it gets the kept tube's job only
    try:
        job = await conn.reserve(1)
    except BrokerConnectionError:
        job = await conn.reserve(1)
    assert job is not None and job.body == b"kept"
    assert conn.watched == kept
    assert await conn.reserve(0) is None
    await conn.aclose()
