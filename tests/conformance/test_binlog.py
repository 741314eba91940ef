"""Hard restarts: jobs survive when the server journals them (beanstalkd ``-b DIR``), and
are lost (ids starting again at 1) when it does not.

The real server is killed with SIGKILL and started again on the same binlog directory; the
fake journals to a directory of its own and is restarted in process with
``restart(keep_jobs=True)`` (crash, then a start that reads the directory back). More of
1.12's restart behaviour is in test_binlog_quirks.py, test_binlog_cli.py (processes) and
test_differential_restart.py (random sequences).
"""

from __future__ import annotations

import time

from tests.conformance.rawclient import stats_dict
from tests.conformance.targets import ServerFactory, ServerTarget


def _journaled(spawn: ServerFactory) -> ServerTarget:
    return spawn.spawn(binlog=True, max_job_size=10)


def test_restart_on_an_empty_binlog_starts_ids_at_one(spawn: ServerFactory) -> None:
    """A server restarted on an empty journal serves normally; the first id is 1."""
    server = _journaled(spawn)
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 0 0\r\n\r\n") == b"INSERTED 1\r\n"


def test_buried_job_survives_a_restart(spawn: ServerFactory) -> None:
    """A buried job is journaled and comes back buried."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 0\r\n\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 0\r\n\r\n"
        assert conn.cmd(b"bury 1 0\r\n") == b"BURIED\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert conn.cmd(b"peek-buried\r\n") == b"FOUND 1 0\r\n\r\n"
        assert stats_dict(conn.cmd(b"stats-job 1\r\n"))["state"] == "buried"


def test_ready_job_survives_a_restart_and_can_be_deleted(spawn: ServerFactory) -> None:
    """A put is journaled: after a restart the job is there to delete."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 0\r\n\r\n") == b"INSERTED 1\r\n"
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"


def test_release_with_delay_survives_a_restart_and_a_delete_persists(
    spawn: ServerFactory,
) -> None:
    """A job released with a delay comes back (and becomes reservable); a deleted job stays
    deleted across the restart."""
    server = spawn.spawn(binlog=True)
    with server.connect() as conn:
        assert conn.cmd(b"use test\r\n") == b"USING test\r\n"
        assert conn.cmd(b"put 0 0 120 4\r\ntest\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"put 0 0 120 4\r\ntes1\r\n") == b"INSERTED 2\r\n"
        assert conn.cmd(b"watch test\r\n") == b"WATCHING 2\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 4\r\ntest\r\n"
        assert conn.cmd(b"release 1 1 1\r\n") == b"RELEASED\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 2 4\r\ntes1\r\n"
        assert conn.cmd(b"delete 2\r\n") == b"DELETED\r\n"
    server.restart_keeping_jobs()
    with server.connect(timeout=3.0) as conn:
        assert conn.cmd(b"watch test\r\n") == b"WATCHING 2\r\n"
        assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 4\r\ntest\r\n"
        assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"
        assert conn.cmd(b"delete 2\r\n") == b"NOT_FOUND\r\n"


def test_restart_brings_reserved_jobs_back_ready_and_continues_ids(
    spawn: ServerFactory,
) -> None:
    """A job reserved at the crash comes back ready, and the next id is max id + 1."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 5 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"put 5 0 100 1\r\nb\r\n") == b"INSERTED 2\r\n"
        assert conn.cmd(b"delete 2\r\n") == b"DELETED\r\n"
        assert conn.cmd(b"put 5 0 100 1\r\nc\r\n") == b"INSERTED 3\r\n"
        assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
    # closing the connection released job 1; reserve it again on a live connection
    with server.connect() as holder:
        assert holder.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
        server.restart_keeping_jobs()
    with server.connect() as conn:
        assert stats_dict(conn.cmd(b"stats-job 1\r\n"))["state"] == "ready"
        assert conn.cmd(b"put 0 0 1 0\r\n\r\n") == b"INSERTED 4\r\n"


def test_restart_brings_an_overdue_delayed_job_back_ready(spawn: ServerFactory) -> None:
    """A delayed job whose deadline passed while the server was down is ready at once."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 1 100 1\r\na\r\n") == b"INSERTED 1\r\n"
    time.sleep(1.05)
    server.restart_keeping_jobs()
    with server.connect() as conn:
        assert stats_dict(conn.cmd(b"stats-job 1\r\n"))["state"] == "ready"
        assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"RESERVED 1 1\r\na\r\n"


def test_restart_keeps_no_counters_pauses_or_empty_tubes(spawn: ServerFactory) -> None:
    """Counters, tube pauses and empty tubes are not journaled; a job's tube comes back."""
    server = _journaled(spawn)
    with server.connect() as conn:
        assert conn.cmd(b"use kept\r\n") == b"USING kept\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"pause-tube kept 3600\r\n") == b"PAUSED\r\n"
        assert conn.cmd(b"watch empty\r\n") == b"WATCHING 2\r\n"
        server.restart_keeping_jobs()
    with server.connect() as conn:
        stats = stats_dict(conn.cmd(b"stats\r\n"))
        assert (stats["cmd-put"], stats["cmd-use"], stats["total-jobs"]) == ("0", "0", "0")
        tube = stats_dict(conn.cmd(b"stats-tube kept\r\n"))
        assert (tube["pause"], tube["current-jobs-ready"]) == ("0", "1")
        assert conn.cmd(b"stats-tube empty\r\n") == b"NOT_FOUND\r\n"


def test_restart_without_a_binlog_loses_jobs_and_reuses_ids(server: ServerTarget) -> None:
    """Without a journal a restarted server is empty and allocates ids from 1 again."""
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\nb\r\n") == b"INSERTED 2\r\n"
    server.restart_empty()
    with server.connect() as conn:
        assert conn.cmd(b"peek 1\r\n") == b"NOT_FOUND\r\n"
        assert conn.cmd(b"put 0 0 100 1\r\nc\r\n") == b"INSERTED 1\r\n"
