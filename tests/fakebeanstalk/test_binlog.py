"""The fake's binlog in process: restarts on a FakeClock, the in-memory journal behind
``restart(keep_jobs=True)``, start/stop/crash on a directory, fsync policy, errors.

Byte-level and behavioural equality with the real beanstalkd is checked in
tests/conformance (test_binlog*, test_differential_restart); these tests cover what only an
in-process server can show.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakebeanstalk import BinlogError, FakeBeanstalkServer, FakeClock
from fakebeanstalk.binlog.storage import MemoryStorage
from fakebeanstalk.binlog.wal import Wal
from fakebeanstalk.model import Job, Tube
from tests.fakebeanstalk.conftest import Raw, stats_of


@pytest.fixture
def clock() -> FakeClock:
    """Fake time, so that deadlines across a restart are exact."""
    return FakeClock()


@pytest.fixture
def journaled(tmp_path: Path, clock: FakeClock) -> Iterator[FakeBeanstalkServer]:
    """A started fake journaling to ``tmp_path`` (like ``-b tmp_path``)."""
    server = FakeBeanstalkServer(clock=clock, binlog_dir=tmp_path).start()
    yield server
    server.stop()


def _raw(server: FakeBeanstalkServer) -> Raw:
    return Raw(socket.create_connection(server.address, timeout=5))


def test_a_delayed_job_keeps_its_deadline_across_the_downtime(
    journaled: FakeBeanstalkServer, clock: FakeClock
) -> None:
    raw = _raw(journaled)
    assert raw.cmd(b"put 0 60 100 1\r\nx\r\n") == b"INSERTED 1\r\n"
    clock.advance(10)
    journaled.crash()
    clock.advance(30)  # the server is down for 30 s
    journaled.start()
    again = _raw(journaled)
    job = stats_of(again.cmd(b"stats-job 1\r\n"))
    assert (job["state"], job["time-left"], job["age"]) == ("delayed", "20", "40")
    clock.advance(19)
    assert again.cmd(b"reserve-with-timeout 0\r\n") == b"TIMED_OUT\r\n"
    clock.advance(1)
    assert again.cmd(b"reserve-with-timeout 0\r\n") == b"RESERVED 1 1\r\nx\r\n"


def test_a_delayed_job_whose_deadline_passed_during_the_downtime_is_ready(
    journaled: FakeBeanstalkServer, clock: FakeClock
) -> None:
    assert _raw(journaled).cmd(b"put 0 60 100 1\r\nx\r\n") == b"INSERTED 1\r\n"
    journaled.stop()
    clock.advance(61)
    journaled.start()
    assert _raw(journaled).cmd(b"reserve-with-timeout 0\r\n") == b"RESERVED 1 1\r\nx\r\n"


def test_start_stop_and_restart_on_a_directory_keep_the_jobs(
    journaled: FakeBeanstalkServer, tmp_path: Path
) -> None:
    assert _raw(journaled).cmd(b"put 0 0 100 1\r\nx\r\n") == b"INSERTED 1\r\n"
    journaled.stop()
    journaled.start()
    journaled.restart()  # with a directory, restart keeps the jobs by default
    assert [job.id for job in journaled.jobs()] == [1]
    stats = journaled.stats()
    assert (stats["binlog-oldest-index"], stats["binlog-current-index"]) == ("1", "3")
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "binlog.1",
        "binlog.2",
        "binlog.3",
        "lock",
    ]
    journaled.restart(keep_jobs=False)  # the binlog is emptied: ids from 1 again
    assert journaled.jobs() == []
    assert _raw(journaled).cmd(b"put 0 0 100 1\r\ny\r\n") == b"INSERTED 1\r\n"


def test_an_in_process_restart_reads_the_files_not_a_copy(
    journaled: FakeBeanstalkServer, tmp_path: Path
) -> None:
    """What the restart restores is what the directory holds: remove the files behind the
    server's back and nothing comes back."""
    assert _raw(journaled).cmd(b"put 0 0 100 1\r\nx\r\n") == b"INSERTED 1\r\n"
    journaled.crash()
    for path in tmp_path.glob("binlog.*"):
        path.unlink()
    journaled.restart(keep_jobs=True)
    assert journaled.jobs() == []


def test_without_a_directory_keep_jobs_uses_an_in_memory_binlog_not_shown_in_stats(
    fakebeanstalk: FakeBeanstalkServer,
) -> None:
    raw = _raw(fakebeanstalk)
    assert raw.cmd(b"put 0 0 100 1\r\nx\r\n") == b"INSERTED 1\r\n"
    assert raw.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\nx\r\n"
    fakebeanstalk.restart(keep_jobs=True)
    assert [(job.id, job.state) for job in fakebeanstalk.jobs()] == [(1, "ready")]
    stats = fakebeanstalk.stats()
    assert (stats["binlog-records-written"], stats["binlog-current-index"]) == ("0", "0")
    assert fakebeanstalk.job_stats(1)["file"] == "0"  # type: ignore[index]
    fakebeanstalk.stop()
    fakebeanstalk.start()  # a plain start of a server without a directory is empty
    assert fakebeanstalk.jobs() == []


def test_binlog_stats_and_job_file_move_with_the_journal(
    journaled: FakeBeanstalkServer,
) -> None:
    raw = _raw(journaled)
    raw.cmd(b"put 0 0 100 1\r\nx\r\n")
    raw.cmd(b"reserve\r\n")
    raw.cmd(b"release 1 0 0\r\n")  # not journaled
    raw.cmd(b"reserve\r\n")
    raw.cmd(b"release 1 0 5\r\n")  # journaled
    stats = stats_of(raw.cmd(b"stats\r\n"))
    assert (stats["binlog-records-written"], stats["binlog-max-size"]) == ("2", "10485760")
    assert stats_of(raw.cmd(b"stats-job 1\r\n"))["file"] == "1"


def test_a_missing_binlog_directory_is_refused(tmp_path: Path) -> None:
    server = FakeBeanstalkServer(binlog_dir=tmp_path / "missing")
    with pytest.raises(BinlogError):
        server.start()
    assert not server.running


class _CountingStorage(MemoryStorage):
    """Memory files that count the fsyncs asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0

    def sync(self, seq: int) -> None:
        self.syncs += 1


@pytest.mark.parametrize(
    ("fsync_ns", "expected"), [(None, 0), (0, 3), (3600 * 10**9, 1)], ids=["-F", "-f0", "-f1h"]
)
def test_fsync_follows_the_policy(fsync_ns: int | None, expected: int) -> None:
    """-F never syncs, -f0 syncs after every write, a long -f syncs the first time only."""
    storage = _CountingStorage()
    wal = Wal(storage, wall_offset=0, fsync_ns=fsync_ns)
    assert wal.new_file()
    wal.cur = wal.files[-1]
    tube = Tube("default")
    for job_id in (1, 2, 3):
        job = Job(job_id, tube, 0, 0, 10**9, 0)
        job.state = "ready"
        assert wal.reserve_put(job)
        assert wal.write(job)
        wal.maintain()
    assert storage.syncs == expected
