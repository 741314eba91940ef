"""The behaviours beanstalkd's own C suite (testserv.c) checks over TCP, one test each:
framing, peek, bury and kick, put, delete, stats (reservations are in test_c_suite_reserve).

Every exchange is compared byte for byte. Where the C suite only looks for a substring (its
``ckrespsub``), these tests compare the whole reply when nothing in it is volatile.
"""

from __future__ import annotations

import time

from tests.conformance.rawclient import RawConnection, ok_reply, put_cmd, stats_dict
from tests.conformance.targets import ServerFactory, ServerTarget

# Delays and timeouts are checked to within +50 ms (and never early).
LATE_MARGIN = 2.0
"""How late a timed reply may come and still pass: generous, so that a loaded machine never
fails it. The behaviour is the lower bound (never early); precision is bench/'s business."""


def test_unknown_command_is_answered_unknown_command(conn: RawConnection) -> None:
    """A line that matches no command prefix is UNKNOWN_COMMAND."""
    assert conn.cmd(b"nont10knowncommand\r\n") == b"UNKNOWN_COMMAND\r\n"


def test_overlong_line_gets_one_bad_format_and_the_next_put_still_gets_id_1(
    conn: RawConnection,
) -> None:
    """A 500-byte line is discarded up to its CRLF with one BAD_FORMAT; the next line parses."""
    for _ in range(10):
        conn.send(b"a" * 50)
    conn.send(b"\r\n")
    assert conn.reply() == b"BAD_FORMAT\r\n"
    assert conn.cmd(b"put 0 0 1 1\r\nA\r\n") == b"INSERTED 1\r\n"


def test_put_in_drain_mode_is_answered_draining(server: ServerTarget) -> None:
    """In drain mode a put (line and body) is refused with DRAINING."""
    server.drain()
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 1 1\r\nx\r\n") == b"DRAINING\r\n"


def test_peek_finds_a_job_by_id(conn: RawConnection) -> None:
    """peek <id> returns FOUND with the body."""
    assert conn.cmd(b"put 0 0 1 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"peek 1\r\n") == b"FOUND 1 1\r\na\r\n"


def test_peek_of_an_unknown_id_is_not_found(conn: RawConnection) -> None:
    """peek of an id never allocated, up to 2^64-1, is NOT_FOUND."""
    assert conn.cmd(b"put 0 0 1 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"peek 2\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"peek 18446744073709551615\r\n") == b"NOT_FOUND\r\n"


def test_peek_with_an_overflowing_or_non_numeric_id_is_bad_format(conn: RawConnection) -> None:
    """Ids over 2^64-1, and ids with junk before or after the digits, are BAD_FORMAT."""
    assert conn.cmd(b"peek 18446744073709551616\r\n") == b"BAD_FORMAT\r\n"
    assert conn.cmd(b"peek 18446744073709551616" + b"0" * 28 + b"\r\n") == b"BAD_FORMAT\r\n"
    assert conn.cmd(b"peek foo111\r\n") == b"BAD_FORMAT\r\n"
    assert conn.cmd(b"peek 111foo\r\n") == b"BAD_FORMAT\r\n"


def test_peek_works_over_a_unix_socket(spawn: ServerFactory) -> None:
    """A server listening on a unix socket speaks the same protocol."""
    server = spawn.spawn(unix=True)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 1 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert conn.cmd(b"peek 1\r\n") == b"FOUND 1 1\r\na\r\n"


def test_peek_delayed_shows_the_job_with_the_earliest_deadline(conn: RawConnection) -> None:
    """peek-delayed returns the delayed job due first, then the next one once it is gone."""
    assert conn.cmd(b"peek-delayed\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"put 0 0 1 1\r\nA\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"put 0 99 1 1\r\nB\r\n") == b"INSERTED 2\r\n"
    assert conn.cmd(b"put 0 1 1 1\r\nC\r\n") == b"INSERTED 3\r\n"
    assert conn.cmd(b"peek-delayed\r\n") == b"FOUND 3 1\r\nC\r\n"
    assert conn.cmd(b"delete 3\r\n") == b"DELETED\r\n"
    assert conn.cmd(b"peek-delayed\r\n") == b"FOUND 2 1\r\nB\r\n"
    assert conn.cmd(b"delete 2\r\n") == b"DELETED\r\n"
    assert conn.cmd(b"peek-delayed\r\n") == b"NOT_FOUND\r\n"


def test_bury_needs_a_reservation_and_kick_returns_buried_jobs_to_ready(
    conn: RawConnection,
) -> None:
    """bury of an unreserved job is NOT_FOUND; a buried job shows in peek-buried; kick 1
    makes it ready, and a second kick finds nothing."""
    assert conn.cmd(b"put 0 0 1 1\r\nA\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"bury 1 0\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"peek-buried\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"RESERVED 1 1\r\nA\r\n"
    assert conn.cmd(b"bury 1 0\r\n") == b"BURIED\r\n"
    assert conn.cmd(b"peek-buried\r\n") == b"FOUND 1 1\r\nA\r\n"
    assert conn.cmd(b"kick 1\r\n") == b"KICKED 1\r\n"
    assert conn.cmd(b"peek-buried\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"peek-ready\r\n") == b"FOUND 1 1\r\nA\r\n"
    assert conn.cmd(b"kick 1\r\n") == b"KICKED 0\r\n"


def test_touch_with_a_malformed_id_is_bad_format(conn: RawConnection) -> None:
    """touch rejects ids with junk before or after the digits."""
    for line in (b"touch a111\r\n", b"touch 111a\r\n", b"touch !@#!@#\r\n"):
        assert conn.cmd(line) == b"BAD_FORMAT\r\n", line


def test_touch_of_an_unknown_job_is_not_found(conn: RawConnection) -> None:
    """touch of a job that does not exist (or is not reserved by us) is NOT_FOUND."""
    assert conn.cmd(b"touch 1\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"touch 100000000000000\r\n") == b"NOT_FOUND\r\n"


def test_bury_with_a_malformed_line_is_bad_format(conn: RawConnection) -> None:
    """bury needs an id and a priority, both plain integers."""
    for line in (b"bury 111abc 2\r\n", b"bury 111\r\n", b"bury 111 222abc\r\n"):
        assert conn.cmd(line) == b"BAD_FORMAT\r\n", line


def test_kick_job_with_a_malformed_id_is_bad_format(conn: RawConnection) -> None:
    """kick-job rejects ids with junk before or after the digits."""
    for line in (b"kick-job a111\r\n", b"kick-job 111a\r\n", b"kick-job !@#!@#\r\n"):
        assert conn.cmd(line) == b"BAD_FORMAT\r\n", line


def test_kick_job_kicks_a_buried_job_once(conn: RawConnection) -> None:
    """kick-job of a buried job is KICKED; of an unknown or now-ready job, NOT_FOUND."""
    assert conn.cmd(b"put 0 0 1 1\r\nA\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\nA\r\n"
    assert conn.cmd(b"bury 1 0\r\n") == b"BURIED\r\n"
    assert conn.cmd(b"kick-job 100\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"kick-job 1\r\n") == b"KICKED\r\n"
    assert conn.cmd(b"kick-job 1\r\n") == b"NOT_FOUND\r\n"


def test_kick_job_kicks_a_delayed_job_but_not_a_ready_one(conn: RawConnection) -> None:
    """kick-job of a delayed job is KICKED; of a ready job, NOT_FOUND."""
    assert conn.cmd(b"put 0 0 1 1\r\nA\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"put 0 10 1 1\r\nB\r\n") == b"INSERTED 2\r\n"
    assert conn.cmd(b"kick-job 1\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"kick-job 2\r\n") == b"KICKED\r\n"
    assert conn.cmd(b"kick-job 2\r\n") == b"NOT_FOUND\r\n"


def test_paused_tube_delays_a_reserve_until_the_pause_ends(conn: RawConnection) -> None:
    """pause-tube default 1 holds back its ready job from reserve for 1 s (to +50 ms)."""
    assert conn.cmd(b"put 0 0 0 1\r\nx\r\n") == b"INSERTED 1\r\n"
    started = time.monotonic()
    assert conn.cmd(b"pause-tube default 1\r\n") == b"PAUSED\r\n"
    assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\nx\r\n"
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= 1.0 + LATE_MARGIN, elapsed


def test_tube_name_may_contain_an_underscore(conn: RawConnection) -> None:
    """An underscore is one of the characters allowed in a tube name."""
    assert conn.cmd(b"use x_y\r\n") == b"USING x_y\r\n"


def test_two_commands_in_one_packet_get_two_replies_in_order(conn: RawConnection) -> None:
    """Pipelined commands in one send are answered one by one, in order."""
    conn.send(b"use a\r\nuse b\r\n")
    assert conn.replies(2) == [b"USING a\r\n", b"USING b\r\n"]


def test_job_too_big_swallows_its_body_and_allocates_no_id(spawn: ServerFactory) -> None:
    """With -z 10 an 11-byte put is JOB_TOO_BIG; its 13 bytes of body (here a command
    line) are discarded unread, and the next put still gets id 1."""
    server = spawn.spawn(max_job_size=10)
    with server.connect() as conn:
        conn.send(b"put 0 0 0 11\r\n")
        conn.send(b"delete 9999\r\n")
        conn.send(b"put 0 0 0 1\r\n")
        conn.send(b"x\r\n")
        assert conn.replies(2) == [b"JOB_TOO_BIG\r\n", b"INSERTED 1\r\n"]


def test_invalid_job_sizes_are_bad_format_and_consume_no_body(spawn: ServerFactory) -> None:
    """A size over u32, with junk after it, or non-numeric, is BAD_FORMAT (no id used)."""
    server = spawn.spawn(max_job_size=1 << 30)
    with server.connect() as conn:
        conn.send(b"put 0 0 0 4294967296\r\n")
        conn.send(b"put 0 0 0 10b\r\n")
        conn.send(b"put 0 0 0 --!@#$%^&&**()0b\r\n")
        conn.send(b"put 0 0 0 1\r\n")
        conn.send(b"x\r\n")
        assert conn.replies(4) == [
            b"BAD_FORMAT\r\n",
            b"BAD_FORMAT\r\n",
            b"BAD_FORMAT\r\n",
            b"INSERTED 1\r\n",
        ]


def test_job_one_byte_over_one_gib_is_job_too_big(spawn: ServerFactory) -> None:
    """With the largest max job size (1 GiB), a 1 GiB + 1 body is JOB_TOO_BIG after the
    server has swallowed all of it."""
    server = spawn.spawn(max_job_size=1 << 30)
    with server.connect(timeout=30) as conn:
        conn.send(b"put 0 0 0 1073741825\r\n")
        chunk = b"a" * (1 << 20)
        for _ in range(1024):
            conn.send(chunk)
        conn.send(b"x")
        conn.send(b"\r\n")
        assert conn.reply() == b"JOB_TOO_BIG\r\n"
        assert conn.cmd(b"put 0 0 0 1\r\nx\r\n") == b"INSERTED 1\r\n"


def test_delete_of_a_ready_job_is_deleted(conn: RawConnection) -> None:
    """A ready job (here with an empty body) can be deleted."""
    assert conn.cmd(b"put 0 0 0 0\r\n\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"


def test_delete_of_a_job_reserved_by_another_connection_is_not_found(
    server: ServerTarget,
) -> None:
    """Only the reserving connection may delete a reserved job."""
    with server.connect() as producer, server.connect() as other:
        assert producer.cmd(b"put 0 0 1 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert other.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
        assert producer.cmd(b"delete 1\r\n") == b"NOT_FOUND\r\n"


def test_delete_with_a_malformed_id_is_bad_format(conn: RawConnection) -> None:
    """delete rejects overflowing ids and ids with junk before or after the digits."""
    for line in (
        b"delete 18446744073709551616\r\n",
        b"delete 184467440737095516160000000000000000000000000000\r\n",
        b"delete foo111\r\n",
        b"delete 111foo\r\n",
    ):
        assert conn.cmd(line) == b"BAD_FORMAT\r\n", line


def test_reserve_across_watched_tubes_takes_the_most_urgent_job(conn: RawConnection) -> None:
    """With several watched tubes, reserve returns the lowest priority value of them all."""
    assert conn.cmd(b"use abc\r\n") == b"USING abc\r\n"
    assert conn.cmd(b"put 999999 0 0 0\r\n\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"use def\r\n") == b"USING def\r\n"
    assert conn.cmd(b"put 99 0 0 0\r\n\r\n") == b"INSERTED 2\r\n"
    assert conn.cmd(b"watch abc\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"watch def\r\n") == b"WATCHING 3\r\n"
    assert conn.cmd(b"reserve\r\n") == b"RESERVED 2 0\r\n\r\n"


def test_put_with_a_negative_delay_is_bad_format(conn: RawConnection) -> None:
    """Integers take no sign: a delay of -1 is BAD_FORMAT."""
    assert conn.cmd(b"put 512 -1 100 0\r\n") == b"BAD_FORMAT\r\n"


def test_put_with_a_garbage_priority_is_bad_format(conn: RawConnection) -> None:
    """A non-numeric priority is BAD_FORMAT; the body is then read as a command line."""
    conn.send(b"put -1kkdj9djjkd9 0 100 1\r\na\r\n")
    assert conn.replies(2) == [b"BAD_FORMAT\r\n", b"UNKNOWN_COMMAND\r\n"]


def test_put_with_a_negative_priority_is_bad_format(conn: RawConnection) -> None:
    """A priority of -1 is BAD_FORMAT; the body is then read as a command line."""
    conn.send(b"put -1 0 100 1\r\na\r\n")
    assert conn.replies(2) == [b"BAD_FORMAT\r\n", b"UNKNOWN_COMMAND\r\n"]


def test_put_with_the_largest_priority_is_inserted(conn: RawConnection) -> None:
    """4294967295 (2^32-1) is a valid priority."""
    assert conn.cmd(b"put 4294967295 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"


def test_put_with_priority_two_to_the_32_is_bad_format(conn: RawConnection) -> None:
    """2^32 overflows the u32 priority: BAD_FORMAT."""
    conn.send(b"put 4294967296 0 100 1\r\na\r\n")
    assert conn.replies(2) == [b"BAD_FORMAT\r\n", b"UNKNOWN_COMMAND\r\n"]


def test_ready_job_reports_time_left_zero(conn: RawConnection) -> None:
    """stats-job of a ready job shows time-left 0 (not its ttr)."""
    assert conn.cmd(b"put 0 0 5 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert stats_dict(conn.cmd(b"stats-job 1\r\n"))["time-left"] == "0"


def test_put_with_a_delay_of_one_second_is_inserted(conn: RawConnection) -> None:
    """A small delay is accepted."""
    assert conn.cmd(b"put 0 1 1 0\r\n\r\n") == b"INSERTED 1\r\n"


def _tube_counts(conn: RawConnection) -> tuple[str, str, str]:
    stats = stats_dict(conn.cmd(b"stats-tube default\r\n"))
    return stats["current-jobs-ready"], stats["current-jobs-delayed"], stats["total-jobs"]


def test_delayed_job_becomes_ready_after_its_delay(conn: RawConnection) -> None:
    """A job put with delay 1 counts as delayed, then as ready 1.01 s later."""
    assert conn.cmd(b"put 0 1 1 0\r\n\r\n") == b"INSERTED 1\r\n"
    assert _tube_counts(conn) == ("0", "1", "1")
    time.sleep(1.01)
    assert _tube_counts(conn) == ("1", "0", "1")


def _stats_tube_body(name: bytes, *, total: int, using: int, watching: int, deletes: int) -> bytes:
    lines = [
        b"name: " + name,
        b"current-jobs-urgent: 0",
        b"current-jobs-ready: 0",
        b"current-jobs-reserved: 0",
        b"current-jobs-delayed: 0",
        b"current-jobs-buried: 0",
        b"total-jobs: %d" % total,
        b"current-using: %d" % using,
        b"current-watching: %d" % watching,
        b"current-waiting: 0",
        b"cmd-delete: %d" % deletes,
        b"cmd-pause-tube: 0",
        b"pause: 0",
        b"pause-time-left: 0",
    ]
    return ok_reply(b"---\n" + b"".join(line + b"\n" for line in lines))


def test_stats_tube_reports_every_field_of_the_used_tube_and_of_default(
    conn: RawConnection,
) -> None:
    """stats-tube lists its fields in order, names unquoted in 1.12, with exact counts."""
    assert conn.cmd(b"use tubea\r\n") == b"USING tubea\r\n"
    assert conn.cmd(b"put 0 0 0 1\r\nx\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"
    assert conn.cmd(b"stats-tube tubea\r\n") == _stats_tube_body(
        b"tubea", total=1, using=1, watching=0, deletes=1
    )
    assert conn.cmd(b"stats-tube default\r\n") == _stats_tube_body(
        b"default", total=0, using=0, watching=1, deletes=0
    )


def test_large_ttrs_are_reported_exactly(conn: RawConnection) -> None:
    """ttr values around 2^32 ns and up to 6 hours survive the seconds/ns round trip."""
    ttrs = (120, 4294, 4295, 4296, 4297, 5000, 21600)
    for job_id, ttr in enumerate(ttrs, start=1):
        assert conn.cmd(put_cmd(b"a", ttr=ttr)) == b"INSERTED %d\r\n" % job_id
    for job_id, ttr in enumerate(ttrs, start=1):
        assert stats_dict(conn.cmd(b"stats-job %d\r\n" % job_id))["ttr"] == str(ttr)


def test_ttr_zero_becomes_one_second(conn: RawConnection) -> None:
    """A ttr of 0 is raised to 1."""
    assert conn.cmd(b"put 0 0 0 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert stats_dict(conn.cmd(b"stats-job 1\r\n"))["ttr"] == "1"


def test_zero_byte_body_is_inserted(conn: RawConnection) -> None:
    """A put of 0 bytes is just its line and a CRLF."""
    assert conn.cmd(b"put 0 0 1 0\r\n\r\n") == b"INSERTED 1\r\n"
