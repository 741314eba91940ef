"""The ``fakebeanstalk`` command: flags, fast start-up, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from fakebeanstalk.__main__ import UsageError, parse_args
from tests.fakebeanstalk.conftest import Raw, stats_of
from tests.servers import free_port


def test_flags_parse_like_beanstalkd() -> None:
    options = parse_args(["-l", "127.0.0.1", "-p11301", "-z", "10", "-VV", "-F", "-b", "/tmp/x"])
    assert (options.address, options.port, options.max_job_size) == ("127.0.0.1", 11301, 10)
    assert (options.verbose, options.binlog_dir) == (2, "/tmp/x")


def test_port_is_a_getaddrinfo_service_as_in_beanstalkd() -> None:
    assert parse_args(["-p", "http"]).port == 80
    assert parse_args(["-p", "65537"]).port == 1  # a number wraps modulo 2^16
    with pytest.raises(UsageError) as raised:
        parse_args(["-p", "-1"])
    assert raised.value.status == 111


def test_sizes_parse_like_sscanf_zu() -> None:
    assert parse_args(["-s", "-1"]).binlog_size == -1  # SIZE_MAX, stored in an int
    assert parse_args(["-s", " +300"]).binlog_size == 300
    assert parse_args(["-z", "-1"]).max_job_size == 2**30
    assert parse_args(["-f", "-1"]).fsync_ms == -1
    assert parse_args(["-f", "7", "-F"]).fsync_ms is None
    for junk in ("300 ", "0x10", "", "1e3"):
        with pytest.raises(UsageError):
            parse_args(["-s", junk])


def test_job_size_is_clamped_to_one_gibibyte() -> None:
    assert parse_args(["-z", str(2**31)]).max_job_size == 2**30


@pytest.mark.parametrize("argv", [["-x"], ["-p"], ["stray"], ["-z", "big"]])
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_args(argv)


def _connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


@pytest.fixture
def cli_server() -> Iterator[tuple[subprocess.Popen[bytes], int, float]]:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "fakebeanstalk", "-l", "127.0.0.1", "-p", str(port)],
        stderr=subprocess.PIPE,
    )
    sock = _connect(port, started + 5)
    ready_after = time.monotonic() - started
    sock.close()
    try:
        yield process, port, ready_after
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_cli_listens_and_serves(
    cli_server: tuple[subprocess.Popen[bytes], int, float],
) -> None:
    _, port, _ready_after = cli_server  # its start-up time is bench/bench_fakebeanstalk.py's
    raw = Raw(socket.create_connection(("127.0.0.1", port), timeout=5))
    assert raw.cmd(b"put 0 0 1 1\r\nx\r\n") == b"INSERTED 1\r\n"
    raw.close()


def test_sigusr1_drains_and_sigterm_stops_cleanly(
    cli_server: tuple[subprocess.Popen[bytes], int, float],
) -> None:
    process, port, _ = cli_server
    raw = Raw(socket.create_connection(("127.0.0.1", port), timeout=5))
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while stats_of(raw.cmd(b"stats\r\n"))["draining"] != "true":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert raw.cmd(b"put 0 0 1 1\r\nx\r\n") == b"DRAINING\r\n"
    assert int(stats_of(raw.cmd(b"stats\r\n"))["pid"]) == process.pid
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    assert raw.closed_by_server()


def test_cli_listens_on_a_unix_socket(tmp_path: object) -> None:
    path = f"/tmp/fbs-cli-{os.getpid()}.sock"
    process = subprocess.Popen([sys.executable, "-m", "fakebeanstalk", "-l", f"unix:{path}"])
    try:
        deadline = time.monotonic() + 5
        sock = socket.socket(socket.AF_UNIX)
        while True:
            try:
                sock.connect(path)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.002)
        assert Raw(sock).cmd(b"list-tubes\r\n") == b"OK 14\r\n---\n- default\n\r\n"
        sock.close()
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
    assert not os.path.exists(path)


def test_version_flag_prints_and_exits() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fakebeanstalk", "-v"], capture_output=True, check=True, timeout=10
    )
    assert b"1.12" in result.stdout
