"""stats, stats-job and stats-tube: field order, formatting and counters.

Volatile values (pid, version, rusage, uptime, id, hostname, os, platform) are masked; all
else is compared byte for byte.
"""

from __future__ import annotations

import re

from tests.conformance.rawclient import (
    RawConnection,
    mask_stats,
    ok_reply,
    put_cmd,
    stats_body,
    stats_dict,
)
from tests.conformance.targets import ServerFactory, ServerTarget

STATS_KEYS = [
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "cmd-put",
    "cmd-peek",
    "cmd-peek-ready",
    "cmd-peek-delayed",
    "cmd-peek-buried",
    "cmd-reserve",
    "cmd-reserve-with-timeout",
    "cmd-delete",
    "cmd-release",
    "cmd-use",
    "cmd-watch",
    "cmd-ignore",
    "cmd-bury",
    "cmd-kick",
    "cmd-touch",
    "cmd-stats",
    "cmd-stats-job",
    "cmd-stats-tube",
    "cmd-list-tubes",
    "cmd-list-tube-used",
    "cmd-list-tubes-watched",
    "cmd-pause-tube",
    "job-timeouts",
    "total-jobs",
    "max-job-size",
    "current-tubes",
    "current-connections",
    "current-producers",
    "current-workers",
    "current-waiting",
    "total-connections",
    "pid",
    "version",
    "rusage-utime",
    "rusage-stime",
    "uptime",
    "binlog-oldest-index",
    "binlog-current-index",
    "binlog-records-migrated",
    "binlog-records-written",
    "binlog-max-size",
    "draining",
    "id",
    "hostname",
    "os",
    "platform",
]

FRESH_VALUES = {
    "cmd-stats": "1",
    "max-job-size": "65535",
    "current-tubes": "1",
    "current-connections": "1",
    "total-connections": "1",
    "binlog-max-size": "10485760",
    "draining": "false",
}
MASKED = {"pid", "version", "rusage-utime", "rusage-stime", "uptime", "id", "hostname"}
MASKED |= {"os", "platform"}


def _masked_body(values: dict[str, str]) -> bytes:
    lines = []
    for key in STATS_KEYS:
        value = "*" if key in MASKED else values.get(key, "0")
        lines.append(f"{key}: {value}\n")
    return b"OK *\r\n---\n" + "".join(lines).encode() + b"\r\n"


def _counters(conn: RawConnection) -> dict[str, str]:
    stats = stats_dict(conn.cmd(b"stats\r\n"))
    return {key: value for key, value in stats.items() if key.startswith("cmd-")}


def test_stats_of_a_fresh_server_lists_every_field_in_order(conn: RawConnection) -> None:
    """A fresh server's stats: 51 fields in beanstalkd's order; stats counts itself."""
    reply = conn.cmd(b"stats\r\n")
    assert [key for key, _ in stats_body(reply)] == STATS_KEYS
    assert mask_stats(reply, MASKED) == _masked_body(FRESH_VALUES)


def test_stats_string_values_have_the_1_12_format(conn: RawConnection) -> None:
    """id is 16 hex digits, version is quoted, uptime and pid are integers."""
    stats = stats_dict(conn.cmd(b"stats\r\n"))
    assert re.fullmatch(r"[0-9a-f]{16}", stats["id"]), stats["id"]
    assert re.fullmatch(r'"[0-9.]+"', stats["version"]), stats["version"]
    assert stats["uptime"].isdigit() and stats["pid"].isdigit()
    assert re.fullmatch(r"\d+\.\d{6}", stats["rusage-utime"]), stats["rusage-utime"]


def test_server_id_differs_between_processes(spawn: ServerFactory) -> None:
    """``id`` is chosen at random when a server starts."""
    ids = []
    for _ in range(2):
        with spawn.spawn().connect() as conn:
            ids.append(stats_dict(conn.cmd(b"stats\r\n"))["id"])
    assert ids[0] != ids[1]


def test_stats_job_lists_every_field_in_order(conn: RawConnection) -> None:
    """stats-job of a fresh ready job, whole reply (tube name unquoted in 1.12)."""
    assert conn.cmd(b"use jobs\r\n") == b"USING jobs\r\n"
    assert conn.cmd(put_cmd(b"abc", pri=1023, ttr=10)) == b"INSERTED 1\r\n"
    body = (
        b"---\nid: 1\ntube: jobs\nstate: ready\npri: 1023\nage: 0\ndelay: 0\nttr: 10\n"
        b"time-left: 0\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\n"
        b"kicks: 0\n"
    )
    assert conn.cmd(b"stats-job 1\r\n") == ok_reply(body)


def test_stats_job_counts_reserves_releases_buries_and_kicks(conn: RawConnection) -> None:
    """Per-job counters follow the job through its states."""
    assert conn.cmd(put_cmd(b"a", ttr=10)) == b"INSERTED 1\r\n"
    assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
    assert conn.cmd(b"release 1 0 0\r\n") == b"RELEASED\r\n"
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
    assert conn.cmd(b"bury 1 0\r\n") == b"BURIED\r\n"
    assert conn.cmd(b"kick-job 1\r\n") == b"KICKED\r\n"
    job = stats_dict(conn.cmd(b"stats-job 1\r\n"))
    counts = [job[key] for key in ("reserves", "timeouts", "releases", "buries", "kicks")]
    assert counts == ["2", "0", "1", "1", "1"]
    assert job["state"] == "ready"


def test_every_parsed_command_counts_whatever_its_reply(conn: RawConnection) -> None:
    """NOT_FOUND, TIMED_OUT and JOB_TOO_BIG replies count; BAD_FORMAT lines whose
    arguments did not parse do not; a put whose only fault is trailing garbage does."""
    for line in (
        b"peek 99\r\n",
        b"peek abc\r\n",
        b"delete 99\r\n",
        b"delete\r\n",
        b"reserve-with-timeout 0\r\n",
        b"put 0 0 0 1 x\r\n",
        b"put x 0 0 1\r\n",
        b"stats-job 99\r\n",
        b"stats-tube nope\r\n",
        b"stats-tube -bad\r\n",
        b"use -bad\r\n",
        b"pause-tube nope 1\r\n",
        b"kick 1\r\n",
        b"touch 5\r\n",
        b"bury 5 0\r\n",
        b"release 5 0 0\r\n",
        b"ignore default\r\n",
        b"watch default\r\n",
    ):
        conn.cmd(line)
    conn.send(b"put 0 0 0 70000\r\n" + b"z" * 70002)
    assert conn.reply() == b"JOB_TOO_BIG\r\n"
    counters = _counters(conn)
    expected = dict.fromkeys(counters, "0")
    expected.update(
        {
            "cmd-put": "2",
            "cmd-peek": "1",
            "cmd-delete": "1",
            "cmd-reserve-with-timeout": "1",
            "cmd-stats-job": "1",
            "cmd-stats-tube": "1",
            "cmd-pause-tube": "1",
            "cmd-kick": "1",
            "cmd-touch": "1",
            "cmd-bury": "1",
            "cmd-release": "1",
            "cmd-ignore": "1",
            "cmd-watch": "1",
            "cmd-stats": "1",
        }
    )
    assert counters == expected


def test_reserve_job_and_kick_job_have_no_counter(conn: RawConnection) -> None:
    """Only cmd-stats moves when reserve-job and kick-job run."""
    assert conn.cmd(put_cmd(b"a", ttr=10)) == b"INSERTED 1\r\n"
    before = _counters(conn)
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
    assert conn.cmd(b"bury 1 0\r\n") == b"BURIED\r\n"
    assert conn.cmd(b"kick-job 1\r\n") == b"KICKED\r\n"
    assert conn.cmd(b"kick-job 9\r\n") == b"NOT_FOUND\r\n"
    after = _counters(conn)
    before["cmd-stats"] = "2"
    before["cmd-bury"] = "1"
    assert after == before


def test_connection_roles_are_counted(server: ServerTarget) -> None:
    """A put makes a producer, any reserve (reserve-job too) a worker; waiters are counted
    while they block; connection totals include closed connections."""
    with server.connect() as producer, server.connect() as worker, server.connect() as idle:
        assert producer.cmd(put_cmd(b"a", ttr=10)) == b"INSERTED 1\r\n"
        assert worker.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
        idle.send(b"reserve\r\n")
        for _ in range(200):
            stats = stats_dict(producer.cmd(b"stats\r\n"))
            if stats["current-waiting"] == "1":
                break
        keys = ("current-connections", "current-producers", "current-workers")
        assert [stats[key] for key in keys] == ["3", "1", "2"]
        assert (stats["current-waiting"], stats["total-connections"]) == ("1", "3")
        assert stats["current-jobs-reserved"] == "1"


def test_stats_tube_of_an_unknown_tube_is_not_found(conn: RawConnection) -> None:
    """stats-tube never creates a tube."""
    assert conn.cmd(b"stats-tube nope\r\n") == b"NOT_FOUND\r\n"
    assert stats_dict(conn.cmd(b"stats\r\n"))["current-tubes"] == "1"


def test_ok_length_excludes_the_trailing_crlf(conn: RawConnection) -> None:
    """``OK <n>`` counts the body bytes only; the body ends with a newline."""
    reply = conn.cmd(b"list-tubes\r\n")
    assert reply == b"OK 14\r\n---\n- default\n\r\n"
