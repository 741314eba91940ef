"""The behaviours beanstalkd's own C suite (testserv.c) checks over TCP, one test each:
reservations, timeouts, connection close, tube lists and name lengths.

Every exchange is compared byte for byte. Where the C suite only looks for a substring (its
``ckrespsub``), these tests compare the whole reply when nothing in it is volatile.
"""

from __future__ import annotations

import time

from tests.conformance.rawclient import RawConnection, ok_reply, put_cmd, stats_dict
from tests.conformance.targets import ServerTarget

NAME_200 = b"0123456789" * 20

# Delays and timeouts are checked to within +50 ms (and never early).
LATE_MARGIN = 2.0
"""How late a timed reply may come and still pass: generous, so that a loaded machine never
fails it. The behaviour is the lower bound (never early); precision is bench/'s business."""


def test_reserve_with_timeout_times_out_while_another_connection_watches(
    server: ServerTarget,
) -> None:
    """reserve-with-timeout 1 answers TIMED_OUT after 1 s (to +50 ms), unaffected by
    another connection watching the same tube."""
    with server.connect() as first, server.connect() as second:
        assert first.cmd(b"watch foo\r\n") == b"WATCHING 2\r\n"
        started = time.monotonic()
        first.send(b"reserve-with-timeout 1\r\n")
        assert second.cmd(b"watch foo\r\n") == b"WATCHING 2\r\n"
        assert first.reply(timeout=1.1) == b"TIMED_OUT\r\n"
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed <= 1.0 + LATE_MARGIN, elapsed


def _state(conn: RawConnection, job_id: int) -> str:
    return stats_dict(conn.cmd(b"stats-job %d\r\n" % job_id))["state"]


def test_ttr_one_reservation_gives_deadline_soon_and_the_job_stays_reserved(
    conn: RawConnection,
) -> None:
    """With ttr 1 the safety margin starts at once: a second reserve answers
    DEADLINE_SOON immediately, and the job is still reserved until released."""
    assert conn.cmd(b"put 0 0 1 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"reserve-with-timeout 1\r\n") == b"RESERVED 1 1\r\na\r\n"
    time.sleep(0.2)
    assert _state(conn, 1) == "reserved"
    started = time.monotonic()
    assert conn.cmd(b"reserve-with-timeout 1\r\n") == b"DEADLINE_SOON\r\n"
    assert time.monotonic() - started < 0.5
    assert _state(conn, 1) == "reserved"
    assert conn.cmd(b"release 1 0 0\r\n") == b"RELEASED\r\n"
    assert _state(conn, 1) == "ready"


def test_reserve_job_of_a_delayed_job_expires_to_ready_after_its_ttr(
    conn: RawConnection,
) -> None:
    """reserve-job takes a delayed job; the reservation gives DEADLINE_SOON like any other
    and, when its ttr runs out, the job goes to ready (not back to delayed)."""
    assert conn.cmd(b"put 0 5 1 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert _state(conn, 1) == "delayed"
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
    time.sleep(0.1)
    assert _state(conn, 1) == "reserved"
    assert conn.cmd(b"reserve-with-timeout 1\r\n") == b"DEADLINE_SOON\r\n"
    assert _state(conn, 1) == "reserved"
    time.sleep(1.0)
    assert conn.cmd(b"put 0 0 1 1\r\nB\r\n") == b"INSERTED 2\r\n"
    assert _state(conn, 1) == "ready"


def test_reserve_job_of_an_already_reserved_job_is_not_found(conn: RawConnection) -> None:
    """A job cannot be reserved twice, even by the connection holding it."""
    assert conn.cmd(b"put 0 0 1 1\r\nA\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\nA\r\n"
    assert conn.cmd(b"reserve-job 1\r\n") == b"NOT_FOUND\r\n"


def test_reserve_job_takes_a_ready_job_out_of_priority_order(conn: RawConnection) -> None:
    """reserve-job reserves the named ready job; unknown ids are NOT_FOUND; only the
    reserved job can be released."""
    assert conn.cmd(b"put 0 0 1 1\r\nA\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"put 0 0 1 1\r\nB\r\n") == b"INSERTED 2\r\n"
    assert conn.cmd(b"reserve-job 2\r\n") == b"RESERVED 2 1\r\nB\r\n"
    assert conn.cmd(b"reserve-job 3\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"release 1 1 0\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"release 2 1 0\r\n") == b"RELEASED\r\n"


def test_reserve_job_of_a_delayed_job_then_release_makes_it_ready(conn: RawConnection) -> None:
    """A delayed job reserved by id and released without delay is ready."""
    for job_id, body in enumerate((b"A", b"B", b"C"), start=1):
        assert conn.cmd(put_cmd(body, delay=100)) == b"INSERTED %d\r\n" % job_id
    assert conn.cmd(b"reserve-job 2\r\n") == b"RESERVED 2 1\r\nB\r\n"
    assert conn.cmd(b"release 2 1 0\r\n") == b"RELEASED\r\n"
    assert _state(conn, 2) == "ready"


def test_reserve_job_of_buried_jobs_then_release_makes_them_ready(conn: RawConnection) -> None:
    """Buried jobs can be reserved by id in any order and released to ready."""
    for job_id, body in ((1, b"A"), (2, b"B")):
        assert conn.cmd(put_cmd(body)) == b"INSERTED %d\r\n" % job_id
        assert conn.cmd(b"reserve-job %d\r\n" % job_id) == b"RESERVED %d 1\r\n%s\r\n" % (
            job_id,
            body,
        )
        assert conn.cmd(b"bury %d 1\r\n" % job_id) == b"BURIED\r\n"
    assert conn.cmd(b"reserve-job 2\r\n") == b"RESERVED 2 1\r\nB\r\n"
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\nA\r\n"
    assert conn.cmd(b"release 1 1 0\r\n") == b"RELEASED\r\n"
    assert conn.cmd(b"release 2 1 0\r\n") == b"RELEASED\r\n"
    assert _state(conn, 1) == "ready"
    assert _state(conn, 2) == "ready"


def test_release_with_a_malformed_line_is_bad_format(conn: RawConnection) -> None:
    """release rejects bad ids, priorities and delays."""
    for line in (
        b"release 18446744073709551616 1 1\r\n",
        b"release 184467440737095516160000000000000000000000000000 1 1\r\n",
        b"release foo111\r\n",
        b"release 111foo\r\n",
        b"release 18446744073709551615 abc 1\r\n",
        b"release 18446744073709551615 1 abc\r\n",
    ):
        assert conn.cmd(line) == b"BAD_FORMAT\r\n", line


def test_release_of_an_unknown_job_is_not_found(conn: RawConnection) -> None:
    """release of a job that does not exist is NOT_FOUND."""
    assert conn.cmd(b"release 1 1 1\r\n") == b"NOT_FOUND\r\n"


def _reserve_then_end(server: ServerTarget, end: str) -> None:
    with server.connect() as consumer, server.connect() as producer:
        consumer.send(b"reserve-with-timeout 1\r\n")
        assert producer.cmd(b"put 0 0 100 1\r\na\r\n") == b"INSERTED 1\r\n"
        assert consumer.reply() == b"RESERVED 1 1\r\na\r\n"
        assert _state(producer, 1) == "reserved"
        if end == "quit":
            consumer.send(b"quit\r\n")
        else:
            consumer.close()
        # Well before the ttr of 100 s the job is ready again.
        assert producer.cmd(b"reserve-with-timeout 1\r\n") == b"RESERVED 1 1\r\na\r\n"


def test_closing_a_connection_releases_its_reserved_job(server: ServerTarget) -> None:
    """A consumer that disconnects gives its reservation back at once."""
    _reserve_then_end(server, "close")


def test_quitting_releases_the_reserved_job(server: ServerTarget) -> None:
    """A consumer that sends quit gives its reservation back at once."""
    _reserve_then_end(server, "quit")


def test_unpausing_default_wakes_a_waiting_reserve(server: ServerTarget) -> None:
    """pause-tube default 0 ends a long pause, and a blocked reserve gets the job at once."""
    with server.connect() as admin, server.connect() as worker:
        assert admin.cmd(b"put 0 0 0 0\r\n\r\n") == b"INSERTED 1\r\n"
        assert admin.cmd(b"pause-tube default 86400\r\n") == b"PAUSED\r\n"
        worker.send(b"reserve\r\n")
        worker.assert_silent(0.05)
        assert admin.cmd(b"pause-tube default 0\r\n") == b"PAUSED\r\n"
        assert worker.reply(timeout=0.5) == b"RESERVED 1 0\r\n\r\n"


def test_list_tubes_and_watched_tubes_are_exact_yaml_and_last_tube_is_not_ignored(
    conn: RawConnection,
) -> None:
    """list-tubes, list-tube-used and list-tubes-watched replies, and NOT_IGNORED when
    ignoring the only watched tube."""
    assert conn.cmd(b"watch w\r\n") == b"WATCHING 2\r\n"
    assert conn.cmd(b"use u\r\n") == b"USING u\r\n"
    assert conn.cmd(b"list-tubes\r\n") == ok_reply(b"---\n- default\n- w\n- u\n")
    assert conn.cmd(b"list-tube-used\r\n") == b"USING u\r\n"
    assert conn.cmd(b"list-tubes-watched\r\n") == ok_reply(b"---\n- default\n- w\n")
    assert conn.cmd(b"ignore default\r\n") == b"WATCHING 1\r\n"
    assert conn.cmd(b"list-tubes-watched\r\n") == ok_reply(b"---\n- w\n")
    assert conn.cmd(b"ignore w\r\n") == b"NOT_IGNORED\r\n"


def test_tube_name_of_200_bytes_is_accepted_and_201_is_bad_format(conn: RawConnection) -> None:
    """Tube names are at most 200 bytes long."""
    assert conn.cmd(b"use " + NAME_200 + b"\r\n") == b"USING " + NAME_200 + b"\r\n"
    assert conn.cmd(b"use " + NAME_200 + b"Z\r\n") == b"BAD_FORMAT\r\n"


def test_command_line_of_224_bytes_is_accepted(conn: RawConnection) -> None:
    """The longest line (224 bytes with CRLF): pause-tube, a 200-byte name, 2^32-1."""
    line = b"pause-tube " + NAME_200 + b" 4294967295\r\n"
    assert len(line) == 224
    assert conn.cmd(b"use " + NAME_200 + b"\r\n") == b"USING " + NAME_200 + b"\r\n"
    assert conn.cmd(line) == b"PAUSED\r\n"
