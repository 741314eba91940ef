"""What a binlog restart of beanstalkd 1.12 brings back, down to its quirks.

Each test runs against the real binary (killed with SIGKILL and started again on the same
``-b`` directory) and against fakebeanstalk restarted on its own binlog directory. The
expected values were read off the real server; the fake must match them.
"""

from __future__ import annotations

import time

from tests.conformance.rawclient import RawConnection, stats_dict
from tests.conformance.targets import ServerFactory, ServerTarget

_BINLOG_KEYS = ("oldest-index", "current-index", "records-migrated", "records-written")


def _journaled(
    spawn: ServerFactory, *, max_job_size: int | None = None, binlog_size: int | None = None
) -> ServerTarget:
    return spawn.spawn(binlog=True, max_job_size=max_job_size, binlog_size=binlog_size)


def _buried_order(conn: RawConnection, tube: bytes) -> list[bytes]:
    """The ids of a tube's buried list, oldest first (kicking them one by one)."""
    assert conn.cmd(b"use " + tube + b"\r\n") == b"USING " + tube + b"\r\n"
    order: list[bytes] = []
    while True:
        reply = conn.cmd(b"peek-buried\r\n")
        if reply == b"NOT_FOUND\r\n":
            return order
        job_id = reply.split()[1]
        order.append(job_id)
        assert conn.cmd(b"kick-job " + job_id + b"\r\n") == b"KICKED\r\n"


def test_buried_jobs_come_back_in_the_order_they_were_first_journaled(
    spawn: ServerFactory,
) -> None:
    """The buried list is rebuilt in replay order (order of the jobs' full records), not
    in the order the jobs were buried."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 5 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\nb\r\n") == b"INSERTED 2\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 2 1\r\nb\r\n"
        assert conn.cmd(b"bury 2 0\r\n") == b"BURIED\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
        assert conn.cmd(b"bury 1 0\r\n") == b"BURIED\r\n"
        assert conn.cmd(b"peek-buried\r\n") == b"FOUND 2 1\r\nb\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert _buried_order(conn, b"default") == [b"1", b"2"]


def test_ids_of_a_collected_binlog_file_are_used_again(spawn: ServerFactory) -> None:
    """The next id is one past the highest id read back, deleted jobs included; but a
    file whose jobs are all deleted is removed at start-up, so one more restart forgets
    those ids and allocates them again."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        stats = stats_dict(conn.cmd(b"stats\r\n"))
        assert (stats["binlog-oldest-index"], stats["binlog-current-index"]) == ("2", "2")
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 1\r\nb\r\n") == b"INSERTED 1\r\n"


def test_a_job_of_the_maximum_size_is_refused_on_restart_with_the_rest_of_its_file(
    spawn: ServerFactory,
) -> None:
    """Replay compares the stored size, CRLF included, with -z: a job within two bytes of
    the limit is dropped, and so is every record after it in the same file."""
    server = _journaled(spawn, max_job_size=10)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 8\r\n12345678\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"put 0 0 100 10\r\n1234567890\r\n") == b"INSERTED 2\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\nx\r\n") == b"INSERTED 3\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert conn.cmd(b"peek 1\r\n") == b"FOUND 1 8\r\n12345678\r\n"
        assert conn.cmd(b"peek 2\r\n") == b"NOT_FOUND\r\n"
        assert conn.cmd(b"peek 3\r\n") == b"NOT_FOUND\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\ny\r\n") == b"INSERTED 2\r\n"


def test_a_job_comes_back_as_last_journaled_with_its_counters(spawn: ServerFactory) -> None:
    """reserve-job and a release without delay are not journaled: the job comes back as
    its bury left it, and the replayed bury counts once more."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
        assert conn.cmd(b"bury 1 5\r\n") == b"BURIED\r\n"
        assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
        assert conn.cmd(b"release 1 9 0\r\n") == b"RELEASED\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
        server.restart_keeping_jobs()
    with server.connect() as conn:
        job = stats_dict(conn.cmd(b"stats-job 1\r\n"))
    assert (job["state"], job["pri"]) == ("buried", "5")
    assert (job["reserves"], job["releases"], job["buries"], job["kicks"]) == ("1", "0", "2", "0")
    assert job["file"] == "1"


def test_kicked_and_delayed_jobs_come_back_with_their_journaled_fields(
    spawn: ServerFactory,
) -> None:
    """A kick is journaled (ready, kicks+1); a release with delay keeps its new priority
    and delay, and the job stays delayed."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 3600 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"kick 1\r\n") == b"KICKED 1\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\nb\r\n") == b"INSERTED 2\r\n"
        assert conn.cmd(b"reserve-job 2\r\n") == b"RESERVED 2 1\r\nb\r\n"
        assert conn.cmd(b"release 2 7 3600\r\n") == b"RELEASED\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        first = stats_dict(conn.cmd(b"stats-job 1\r\n"))
        second = stats_dict(conn.cmd(b"stats-job 2\r\n"))
        stats = stats_dict(conn.cmd(b"stats\r\n"))
    assert (first["state"], first["kicks"], first["delay"]) == ("ready", "1", "3600")
    assert (second["state"], second["pri"], second["delay"]) == ("delayed", "7", "3600")
    assert (second["reserves"], second["releases"]) == ("1", "1")
    assert int(second["time-left"]) > 3500
    assert (stats["current-jobs-ready"], stats["current-jobs-delayed"]) == ("1", "1")
    assert (stats["total-jobs"], stats["cmd-put"], stats["binlog-records-written"]) == (
        "0",
        "0",
        "0",
    )


def test_list_tubes_after_a_restart_follows_the_replay(spawn: ServerFactory) -> None:
    """Tubes come back in the order their first jobs were read, with swap-removes for
    tubes whose jobs turn out deleted; tubes without jobs do not come back."""
    server = _journaled(spawn)
    with server.connect() as conn:
        for tube in (b"x", b"c", b"a", b"b"):
            assert conn.cmd(b"use " + tube + b"\r\n") == b"USING " + tube + b"\r\n"
            assert conn.cmd(b"put 0 0 100 1\r\nj\r\n").startswith(b"INSERTED")
        assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"
        assert conn.cmd(b"watch empty\r\n") == b"WATCHING 2\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert conn.cmd(b"list-tubes\r\n") == b"OK 26\r\n---\n- default\n- b\n- c\n- a\n\r\n"


def test_binlog_stats_count_records_files_and_migrations(spawn: ServerFactory) -> None:
    """With small files (-s 1000) the current index moves on, files whose jobs are all
    gone are removed from the head, and a live job holding an old file is migrated (its
    full record written again: a record written, a record migrated, a new ``file``)."""
    server = _journaled(spawn, binlog_size=1000)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 40\r\n" + b"k" * 40 + b"\r\n") == b"INSERTED 1\r\n"
        seen = []
        for job_id in range(2, 42):
            assert conn.cmd(b"put 0 0 100 40\r\n" + b"p" * 40 + b"\r\n").startswith(b"INSERTED")
            assert conn.cmd(b"delete %d\r\n" % job_id) == b"DELETED\r\n"
            stats = stats_dict(conn.cmd(b"stats\r\n"))
            seen.append(tuple(stats[f"binlog-{key}"] for key in _BINLOG_KEYS))
        job = stats_dict(conn.cmd(b"stats-job 1\r\n"))
    assert seen[:8] == [
        ("1", "1", "0", "3"),
        ("1", "1", "0", "5"),
        ("1", "1", "0", "7"),
        ("1", "2", "0", "9"),  # the reservation of job 4's records opened binlog.2
        ("1", "2", "0", "11"),
        ("1", "2", "0", "13"),
        ("1", "2", "0", "15"),
        ("3", "3", "1", "18"),  # job 1 migrated to binlog.3; binlog.1 and .2 removed
    ]
    assert seen[-1] == ("11", "12", "5", "86")
    assert job["file"] == "11"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert conn.cmd(b"peek 1\r\n") == b"FOUND 1 40\r\n" + b"k" * 40 + b"\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\nx\r\n") == b"INSERTED 42\r\n"


def test_a_delayed_job_keeps_its_wall_clock_deadline_across_a_restart(
    spawn: ServerFactory,
) -> None:
    """The deadline is journaled as wall-clock time: the downtime counts toward the delay,
    the job is still delayed right after the restart and becomes ready at the deadline."""
    server = _journaled(spawn)
    with server.connect() as conn:
        put_at = time.monotonic()  # before: the reply may wait for the binlog's fsync
        assert conn.cmd(b"put 0 1 100 1\r\na\r\n") == b"INSERTED 1\r\n"
    time.sleep(0.3)
    server.restart_keeping_jobs()
    with server.connect(timeout=5.0) as conn:
        job = stats_dict(conn.cmd(b"stats-job 1\r\n"))
        if time.monotonic() - put_at < 0.9:  # unless the restart itself took that long
            assert (job["state"], job["time-left"]) == ("delayed", "0")
        assert conn.cmd(b"reserve-with-timeout 3\r\n") == b"RESERVED 1 1\r\na\r\n"
        assert time.monotonic() - put_at >= 1.0


def test_drain_mode_does_not_survive_a_restart(spawn: ServerFactory) -> None:
    """SIGUSR1's drain mode is process state: the restarted server takes puts again, and
    the jobs put before draining are still there. The id the refused put consumed was never
    journaled, so it is handed out again."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
    server.drain()
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 1\r\nb\r\n") == b"DRAINING\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert stats_dict(conn.cmd(b"stats\r\n"))["draining"] == "false"
        assert conn.cmd(b"peek 1\r\n") == b"FOUND 1 1\r\na\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\nc\r\n") == b"INSERTED 2\r\n"
