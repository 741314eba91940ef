"""put rules: sizes, trailing garbage, body framing and when an id is allocated."""

from __future__ import annotations

from tests.conformance.rawclient import RawConnection, stats_dict
from tests.conformance.targets import ServerFactory, ServerTarget

BAD = b"BAD_FORMAT\r\n"


def test_job_too_big_is_checked_before_trailing_garbage(spawn: ServerFactory) -> None:
    """``put 0 0 0 11 x`` with -z 10 is JOB_TOO_BIG (not BAD_FORMAT) and swallows 13 bytes."""
    server = spawn.spawn(max_job_size=10)
    with server.connect() as conn:
        conn.send(b"put 0 0 0 11 x\r\n0123456789012\r\n")
        assert conn.replies(2) == [b"JOB_TOO_BIG\r\n", b"UNKNOWN_COMMAND\r\n"]


def test_body_of_exactly_the_max_job_size_is_inserted(spawn: ServerFactory) -> None:
    """The limit is inclusive: a body of max-job-size bytes is accepted."""
    server = spawn.spawn(max_job_size=10)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 1 10\r\n0123456789\r\n") == b"INSERTED 1\r\n"
        assert stats_dict(conn.cmd(b"stats\r\n"))["max-job-size"] == "10"


def test_max_job_size_is_clamped_to_one_gib(spawn: ServerFactory) -> None:
    """A max job size above 1 GiB is reduced to 1073741824."""
    server = spawn.spawn(max_job_size=2_000_000_000)
    with server.connect() as conn:
        assert stats_dict(conn.cmd(b"stats\r\n"))["max-job-size"] == "1073741824"


def test_default_max_job_size_is_65535(conn: RawConnection) -> None:
    """Without -z, bodies up to 65535 bytes are accepted and 65536 is too big."""
    assert stats_dict(conn.cmd(b"stats\r\n"))["max-job-size"] == "65535"
    body = b"b" * 65535
    assert conn.cmd(b"put 0 0 1 65535\r\n" + body + b"\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"put 0 0 1 65536\r\n" + body + b"b\r\n") == b"JOB_TOO_BIG\r\n"


def test_trailing_garbage_on_put_is_bad_format_and_the_body_is_read_as_commands(
    conn: RawConnection,
) -> None:
    """``put 0 0 0 1 x`` is BAD_FORMAT without consuming the body, so the body line is then
    parsed as a command."""
    conn.send(b"put 0 0 0 1 x\r\ny\r\n")
    assert conn.replies(2) == [BAD, b"UNKNOWN_COMMAND\r\n"]


def test_body_without_trailing_crlf_is_expected_crlf(conn: RawConnection) -> None:
    """The server reads exactly size+2 bytes and checks the last two are CRLF; the rest of
    the stream is then parsed from where that read stopped."""
    conn.send(b"put 0 0 0 1\r\nab\r\nlist-tube-used\r\n")
    # "ab\r" is the body read; "\nlist-tube-used" is the next line.
    assert conn.replies(2) == [b"EXPECTED_CRLF\r\n", b"UNKNOWN_COMMAND\r\n"]
    assert conn.cmd(b"list-tube-used\r\n") == b"USING default\r\n"


def test_body_arriving_in_pieces_is_assembled(conn: RawConnection) -> None:
    """A body may arrive over several packets."""
    conn.send(b"put 0 0 1 6\r\nab")
    conn.assert_silent(0.05)
    conn.send(b"cd")
    conn.assert_silent(0.05)
    conn.send(b"ef\r")
    conn.assert_silent(0.05)
    conn.send(b"\n")
    assert conn.reply() == b"INSERTED 1\r\n"
    assert conn.cmd(b"peek 1\r\n") == b"FOUND 1 6\r\nabcdef\r\n"


def test_expected_crlf_consumes_an_id(conn: RawConnection) -> None:
    """The id is allocated when the put line is accepted: a bad body end still uses one."""
    assert conn.cmd(b"put 0 0 0 1\r\nabc") == b"EXPECTED_CRLF\r\n"
    assert conn.cmd(b"put 0 0 0 1\r\nx\r\n") == b"INSERTED 2\r\n"


def test_job_too_big_and_bad_format_consume_no_id(spawn: ServerFactory) -> None:
    """Refused put lines allocate nothing."""
    server = spawn.spawn(max_job_size=10)
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 0 11\r\n0123456789a\r\n") == b"JOB_TOO_BIG\r\n"
        assert conn.cmd(b"put 0 0 0 1 1\r\n") == BAD
        assert conn.cmd(b"put 0 0 0\r\n") == BAD
        assert conn.cmd(b"put 0 0 0 1\r\nx\r\n") == b"INSERTED 1\r\n"


def test_connection_closed_mid_body_consumes_an_id(server: ServerTarget) -> None:
    """A producer that disconnects halfway through a body has still used an id."""
    with server.connect() as first:
        first.send(b"put 0 0 0 5\r\nab")
        first.assert_silent(0.05)
    with server.connect() as second:
        # the close is processed asynchronously: a stats round trip on a new connection
        # orders nothing, so poll until the abandoned connection is gone
        for _ in range(100):
            if stats_dict(second.cmd(b"stats\r\n"))["current-connections"] == "1":
                break
        assert second.cmd(b"put 0 0 0 1\r\nx\r\n") == b"INSERTED 2\r\n"


def test_drain_mode_refuses_puts_after_their_body_but_reserves_still_work(
    server: ServerTarget,
) -> None:
    """In drain mode a put is DRAINING (after its body is read), stats shows
    ``draining: true``, and ready jobs can still be reserved and deleted."""
    with server.connect() as conn:
        assert conn.cmd(b"put 0 0 10 1\r\na\r\n") == b"INSERTED 1\r\n"
        server.drain()
        conn.send(b"put 0 0 10 1\r\nb\r\nlist-tube-used\r\n")
        assert conn.replies(2) == [b"DRAINING\r\n", b"USING default\r\n"]
        assert stats_dict(conn.cmd(b"stats\r\n"))["draining"] == "true"
        assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"RESERVED 1 1\r\na\r\n"
        assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"
        assert conn.cmd(b"put 0 0 10 1\r\nc\r\n") == b"DRAINING\r\n"


def test_urgent_means_priority_below_1024(conn: RawConnection) -> None:
    """current-jobs-urgent counts ready jobs with priority < 1024."""
    assert conn.cmd(b"put 1023 0 10 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"put 1024 0 10 1\r\nb\r\n") == b"INSERTED 2\r\n"
    assert stats_dict(conn.cmd(b"stats\r\n"))["current-jobs-urgent"] == "1"
    assert stats_dict(conn.cmd(b"stats-tube default\r\n"))["current-jobs-urgent"] == "1"
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
    assert stats_dict(conn.cmd(b"stats\r\n"))["current-jobs-urgent"] == "0"


def test_ids_are_never_reused_within_a_process(conn: RawConnection) -> None:
    """Deleting the newest job does not free its id."""
    assert conn.cmd(b"put 0 0 1 1\r\na\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"delete 1\r\n") == b"DELETED\r\n"
    assert conn.cmd(b"put 0 0 1 1\r\nb\r\n") == b"INSERTED 2\r\n"


def test_peek_sees_a_job_whose_body_is_still_arriving(server: ServerTarget) -> None:
    """The job exists from the moment its put line is accepted: another connection's peek
    finds it (FOUND with the declared size, followed by the body buffer as it stands: the
    bytes received so far, then uninitialised bytes, so only the received prefix is
    compared), stats-job shows state ``invalid``, delete is NOT_FOUND; once the body is
    complete the put is INSERTED with that id."""
    with server.connect() as producer, server.connect() as other:
        producer.send(b"put 0 0 3600 3\r\nab")
        producer.assert_silent(0.05)
        reply = other.cmd(b"peek 1\r\n")
        assert reply.startswith(b"FOUND 1 3\r\nab")
        assert len(reply) == len(b"FOUND 1 3\r\n") + 5
        job = stats_dict(other.cmd(b"stats-job 1\r\n"))
        assert (job["state"], job["ttr"]) == ("invalid", "3600")
        assert other.cmd(b"delete 1\r\n") == b"NOT_FOUND\r\n"
        producer.send(b"c\r\n")
        assert producer.reply() == b"INSERTED 1\r\n"
        assert other.cmd(b"peek 1\r\n") == b"FOUND 1 3\r\nabc\r\n"
