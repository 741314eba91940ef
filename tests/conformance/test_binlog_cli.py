"""The binlog flags of the command line, checked process against process: the real
``beanstalkd`` and ``python -m fakebeanstalk`` get the same arguments and the same commands,
are stopped with the same signals, and must leave the same jobs, stats and files behind.
"""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.rawclient import RawConnection, mask_stats
from tests.conformance.targets import _listening_tcp
from tests.servers import beanstalkd_binary, free_port, missing_service

KINDS = ("real", "fake")


class Launched:
    """One server process on a free port; ``exit_code`` is set if it would not start."""

    def __init__(self, kind: str, args: list[str]) -> None:
        self.kind = kind
        self.args = args
        self.port = free_port()
        self.exit_code: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def command(self) -> list[str]:
        if self.kind == "real":
            binary = beanstalkd_binary()
            if binary is None:
                missing_service("beanstalkd binary not found (apt-get install beanstalkd)")
            program = [str(binary)]
        else:
            program = [sys.executable, "-m", "fakebeanstalk"]
        return [*program, "-l", "127.0.0.1", "-p", str(self.port), *self.args]

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _listening_tcp(self.port):
            code = self.process.poll()
            if code is not None:
                self.exit_code, self.process = code, None
                return
            assert time.monotonic() < deadline, f"{self.kind} server did not start"
            time.sleep(0.005)

    def stop(self, signum: int) -> None:
        if self.process is not None:
            self.process.send_signal(signum)
            self.process.wait(timeout=10)
            self.process = None

    def connect(self) -> RawConnection:
        return RawConnection.tcp("127.0.0.1", self.port, timeout=5.0)


@pytest.fixture
def launch() -> Iterator[list[Launched]]:
    """Processes started by the test; all are killed at its end."""
    started: list[Launched] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


def _start(started: list[Launched], kind: str, args: list[str]) -> Launched:
    server = Launched(kind, args)
    started.append(server)
    return server


def _binlog_view(server: Launched, max_id: int) -> list[bytes]:
    """stats (binlog fields included), list-tubes and every job's stats."""
    with server.connect() as conn:
        replies = [conn.cmd(b"list-tubes\r\n"), mask_stats(conn.cmd(b"stats\r\n"))]
        for job_id in range(1, max_id + 1):
            replies.append(mask_stats(conn.cmd(b"stats-job %d\r\n" % job_id)))
        return replies


SCRIPT = [
    b"use a\r\n",
    b"put 1 0 100 3\r\nabc\r\n",
    b"put 2 3600 100 3\r\ndef\r\n",
    b"put 0 0 100 0\r\n\r\n",
    b"watch a\r\n",
    b"reserve-with-timeout 0\r\n",
    b"bury 3 9\r\n",
    b"reserve-with-timeout 0\r\n",
    b"delete 1\r\n",
    b"put 5 0 100 3\r\nghi\r\n",
    b"reserve-with-timeout 0\r\n",
]


@pytest.mark.parametrize(
    "flags",
    [
        ["-s", "-1"],
        ["-s", "0"],
        ["-s", "300"],
        ["-s", " +300"],
        ["-s", "4294967296"],
        ["-s", "-99999999999999999999999"],
        ["-z", "-1"],
        ["-z", "-0"],
        ["-f", "-1"],
        ["-F", "-f0"],
        ["-s", "300 "],
        ["-s", "0x10"],
        ["-f", ""],
        ["-p", "no-such-service"],
        ["-p", "-1"],
    ],
    ids=repr,
)
def test_numeric_flags_parse_and_act_as_in_1_12(
    launch: list[Launched], tmp_path: Path, flags: list[str]
) -> None:
    """Sizes go through sscanf("%zu"): signs wrap, overflow saturates, -s lands in an int
    (0 or -1: a file per reservation); junk is exit status 5, a port getaddrinfo() refuses
    exit status 111. Same replies, same stats,
    same binlog file names, before and after a kill -9."""
    seen = []
    for kind in KINDS:
        directory = tmp_path / kind
        directory.mkdir()
        server = _start(launch, kind, ["-b", str(directory), *flags])
        if server.exit_code is not None:
            seen.append([b"exit %d" % server.exit_code])
            continue
        with server.connect() as conn:
            replies = [conn.cmd(line) for line in SCRIPT]
            server.stop(signal.SIGKILL)
        server.start()
        view = _binlog_view(server, 5)  # once it answers, it has read its binlog
        files = sorted(path.name for path in directory.iterdir())
        seen.append([*replies, *view, repr(files).encode()])
    assert seen[0] == seen[1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_jobs_survive_the_command_being_stopped(
    launch: list[Launched], tmp_path: Path, signum: int
) -> None:
    """Stopped with SIGTERM or SIGKILL while holding a reserved job, both commands come
    back with the same jobs, states and counters."""
    seen = []
    for kind in KINDS:
        directory = tmp_path / kind
        directory.mkdir()
        server = _start(launch, kind, ["-b", str(directory)])
        with server.connect() as conn:
            for line in SCRIPT:
                conn.cmd(line)
            server.stop(signum)
        server.start()
        seen.append(_binlog_view(server, 5))
    assert seen[0] == seen[1]
    assert b"state: ready" in seen[1][5]  # the job reserved at the stop is ready again


@pytest.mark.parametrize("holder", KINDS)
def test_a_binlog_directory_is_locked_against_a_second_server(
    launch: list[Launched], tmp_path: Path, holder: str
) -> None:
    """While one server (real or fake) holds the directory, the other exits with 10."""
    _start(launch, holder, ["-b", str(tmp_path)])
    other = _start(launch, "fake" if holder == "real" else "real", ["-b", str(tmp_path)])
    assert other.exit_code == 10


def _v5_record(job_id: int, state: int, deadline_us: int, tube: bytes, body: bytes) -> bytes:
    """A version-5 record (size_t name length, times in microseconds), built here from the
    struct layout of beanstalkd's file.c, independently of fakebeanstalk's encoder."""
    now_us = time.time_ns() // 1000
    fields = struct.pack(
        "<QI4xQQi4xQQIIIIIB",
        job_id,
        7,
        5_000_000,
        60_000_000,
        len(body),
        now_us - 10_000_000,
        deadline_us,
        3,
        1,
        2,
        0,
        0,
        state,
    )
    return struct.pack("<Q", len(tube)) + tube + fields + body


def test_a_version_5_binlog_restores_alike(launch: list[Launched], tmp_path: Path) -> None:
    """Both read binlogs of older releases (format 5): times in microseconds, a delayed
    job whose deadline passed comes back ready, a buried one buried."""
    past_us = time.time_ns() // 1000 - 1_000_000
    data = struct.pack("<i", 5)
    data += _v5_record(4, 4, past_us, b"old", b"hello\r\n")
    data += _v5_record(9, 3, 0, b"old", b"bye\r\n")
    seen = []
    for kind in KINDS:
        directory = tmp_path / kind
        directory.mkdir()
        (directory / "binlog.3").write_bytes(data)
        server = _start(launch, kind, ["-b", str(directory)])
        with server.connect() as conn:
            peeks = [conn.cmd(b"peek 4\r\n"), conn.cmd(b"peek 9\r\n")]
            peeks.append(conn.cmd(b"put 0 0 1 0\r\n\r\n"))
        seen.append(peeks + _binlog_view(server, 10))
        shutil.rmtree(directory)
    assert seen[0] == seen[1]
    assert seen[1][:3] == [b"FOUND 4 5\r\nhello\r\n", b"FOUND 9 3\r\nbye\r\n", b"INSERTED 10\r\n"]


def _damaged(directory: Path, damage: str) -> None:
    """Journal three jobs and a delete with an in-process fake, then damage binlog.1."""
    from fakebeanstalk import FakeBeanstalkServer

    with FakeBeanstalkServer(binlog_dir=directory) as server:
        with RawConnection.tcp(server.host, server.port) as conn:
            for body in (b"first", b"second", b"third"):
                assert conn.cmd(b"put 0 0 100 %d\r\n%s\r\n" % (len(body), body)).startswith(
                    b"INSERTED"
                )
            assert conn.cmd(b"delete 2\r\n") == b"DELETED\r\n"
        server.crash()
    path = directory / "binlog.1"
    data = path.read_bytes()
    path.chmod(0o600)
    if damage.startswith("cut"):
        path.write_bytes(data[: int(damage[3:])])
    elif damage == "long name":
        path.write_bytes(data + struct.pack("<i", 300) + b"x" * 300)
    else:  # an unknown state byte in the last record
        path.write_bytes(data[:-4] + b"\x09" + data[-3:])


@pytest.mark.parametrize("damage", ["cut300", "cut250", "cut200", "cut90", "long name", "state"])
def test_a_damaged_binlog_restores_alike(
    launch: list[Launched], tmp_path: Path, damage: str
) -> None:
    """A file cut mid-record, a name too long, an unknown state: the jobs before the
    damage come back, the damaged record's job does not, the next id follows, both alike."""
    source = tmp_path / "source"
    source.mkdir()
    _damaged(source, damage)
    seen = []
    for kind in KINDS:
        directory = tmp_path / kind
        shutil.copytree(source, directory)
        server = _start(launch, kind, ["-b", str(directory)])
        view = _binlog_view(server, 4)
        with server.connect() as conn:
            view.append(conn.cmd(b"put 0 0 1 0\r\n\r\n"))
        seen.append(view)
    assert seen[0] == seen[1]
