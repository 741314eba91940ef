"""Fault injection and inspection: crash, restart, drops, drain, failing and stalled commands."""

from __future__ import annotations

import socket
import time

import greenstalk
import pytest

from fakebeanstalk import FakeBeanstalkServer, FakeClock
from tests.fakebeanstalk.conftest import RawFactory, stats_of


def test_crash_forgets_jobs_and_refuses_connections(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    raw = connect()
    raw.cmd(b"put 0 0 1 1\r\nx\r\n")
    fakebeanstalk.crash()
    assert raw.closed_by_server()
    with pytest.raises(OSError):
        socket.create_connection(fakebeanstalk.address, timeout=1).close()
    assert fakebeanstalk.jobs() == []


def test_restart_without_jobs_reuses_ids_and_changes_the_server_id(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    raw = connect()
    assert raw.cmd(b"put 0 0 1 1\r\nx\r\n") == b"INSERTED 1\r\n"
    old_id = stats_of(raw.cmd(b"stats\r\n"))["id"]
    port = fakebeanstalk.port
    fakebeanstalk.restart()
    assert fakebeanstalk.port == port
    again = connect()
    assert again.cmd(b"put 0 0 1 1\r\ny\r\n") == b"INSERTED 1\r\n"
    assert stats_of(again.cmd(b"stats\r\n"))["id"] != old_id


def test_restart_keeping_jobs_is_like_a_binlog_restart(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    raw = connect()
    for body in (b"a", b"b", b"c"):
        raw.cmd(b"put 0 0 100 1\r\n" + body + b"\r\n")
    raw.cmd(b"reserve\r\n")
    raw.cmd(b"reserve\r\n")
    raw.cmd(b"bury 2 0\r\n")
    fakebeanstalk.restart(keep_jobs=True)
    states = {job.id: job.state for job in fakebeanstalk.jobs()}
    assert states == {1: "ready", 2: "buried", 3: "ready"}
    again = connect()
    assert again.cmd(b"put 0 0 1 0\r\n\r\n") == b"INSERTED 4\r\n"
    assert stats_of(again.cmd(b"stats\r\n"))["cmd-put"] == "1"


def test_drop_connections_releases_reserved_jobs_and_keeps_serving(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    raw = connect()
    raw.cmd(b"put 0 0 100 1\r\nx\r\n")
    raw.cmd(b"reserve\r\n")
    fakebeanstalk.drop_connections()
    assert raw.closed_by_server()
    assert fakebeanstalk.job_stats(1)["state"] == "ready"  # type: ignore[index]
    assert connect().cmd(b"peek-ready\r\n") == b"FOUND 1 1\r\nx\r\n"


def test_drain_makes_put_answer_draining(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    fakebeanstalk.drain()
    raw = connect()
    assert raw.cmd(b"put 0 0 1 1\r\nx\r\n") == b"DRAINING\r\n"
    assert stats_of(raw.cmd(b"stats\r\n"))["draining"] == "true"


def test_fail_next_closes_the_connection_instead_of_running_the_command(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    fakebeanstalk.fail_next(1, commands={"put"})
    raw = connect()
    assert raw.cmd(b"list-tube-used\r\n") == b"USING default\r\n"
    raw.send(b"put 0 0 1 1\r\nx\r\n")
    assert raw.closed_by_server()
    assert fakebeanstalk.jobs() == []
    assert connect().cmd(b"put 0 0 1 1\r\nx\r\n") == b"INSERTED 1\r\n"


def test_fail_next_surfaces_as_a_client_connection_error(
    fakebeanstalk: FakeBeanstalkServer,
) -> None:
    fakebeanstalk.fail_next()
    with greenstalk.Client(fakebeanstalk.address) as client, pytest.raises(ConnectionError):
        client.put("x")


def test_stall_next_delays_the_reply_by_server_clock_time(
    fakebeanstalk_factory: object,
) -> None:
    clock = FakeClock()
    server: FakeBeanstalkServer = fakebeanstalk_factory(clock=clock)  # type: ignore[operator]
    server.stall_next(1, seconds=10, commands={"stats"})
    sock = socket.create_connection(server.address, timeout=0.2)
    sock.sendall(b"stats\r\n")
    with pytest.raises(TimeoutError):
        sock.recv(100)
    clock.advance(10)
    sock.settimeout(5)
    assert sock.recv(100).startswith(b"OK ")
    sock.close()


def test_stall_without_a_time_lets_client_timeouts_fire(
    fakebeanstalk: FakeBeanstalkServer,
) -> None:
    fakebeanstalk.stall_next()
    started = time.monotonic()
    sock = socket.create_connection(fakebeanstalk.address, timeout=0.2)
    sock.sendall(b"list-tubes\r\n")
    with pytest.raises(TimeoutError):
        sock.recv(100)
    assert time.monotonic() - started < 1
    sock.close()
    assert fakebeanstalk.faults.pending() == 0


def test_inspection_lists_jobs_by_tube_and_state(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    raw = connect()
    raw.cmd(b"use a\r\n")
    raw.cmd(b"put 3 0 1 1\r\nx\r\n")
    raw.cmd(b"put 3 50 1 1\r\ny\r\n")
    assert [j.id for j in fakebeanstalk.jobs(tube="a", state="delayed")] == [2]
    info = fakebeanstalk.job(1)
    assert info is not None and (info.tube, info.state, info.pri, info.body) == (
        "a",
        "ready",
        3,
        b"x",
    )
    assert fakebeanstalk.tubes() == ["default", "a"]
    assert fakebeanstalk.tube_stats("a")["current-jobs-delayed"] == "1"  # type: ignore[index]
    assert fakebeanstalk.job_stats(99) is None


def test_restart_keeping_jobs_restores_what_the_binlog_last_recorded(
    fakebeanstalk: FakeBeanstalkServer, connect: RawFactory
) -> None:
    raw = connect()
    raw.cmd(b"put 0 0 100 1\r\na\r\n")
    raw.cmd(b"reserve\r\n")
    raw.cmd(b"bury 1 5\r\n")  # journaled: buried, pri 5
    raw.cmd(b"reserve-job 1\r\n")  # not journaled
    raw.cmd(b"release 1 9 0\r\n")  # a release without delay is not journaled either
    fakebeanstalk.restart(keep_jobs=True)
    job = fakebeanstalk.job_stats(1)
    assert job is not None
    assert (job["state"], job["pri"], job["buries"], job["releases"]) == ("buried", "5", "2", "0")


def test_pipelined_zero_timeout_reserves_all_answer_with_a_fake_clock() -> None:
    import socket

    from fakebeanstalk import FakeBeanstalkServer, FakeClock

    with (
        FakeBeanstalkServer(clock=FakeClock()) as server,
        socket.create_connection(server.address, timeout=5) as conn,
    ):
        conn.sendall(b"reserve-with-timeout 0\r\n" * 3)
        received = b""
        while received.count(b"\r\n") < 3:
            received += conn.recv(1024)
    assert received == b"TIMED_OUT\r\n" * 3
