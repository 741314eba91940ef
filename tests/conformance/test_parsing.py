"""Framing and parsing quirks: line ends, line length, prefix matching, integers, tube names."""

from __future__ import annotations

import time

import pytest

from tests.conformance.rawclient import RawConnection
from tests.conformance.targets import ServerTarget

BAD = b"BAD_FORMAT\r\n"
UNKNOWN = b"UNKNOWN_COMMAND\r\n"


def test_bare_newline_does_not_end_a_line(conn: RawConnection) -> None:
    """Only CRLF ends a line: ``use a\\nuse b`` is one line with a bad tube name."""
    assert conn.cmd(b"use a\nuse b\r\n") == BAD


def test_line_of_224_bytes_parses(conn: RawConnection) -> None:
    """224 bytes including CRLF is the longest line; integers may be padded with spaces."""
    assert conn.cmd(b"peek" + b" " * 217 + b"1\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"peek" + b" " * 219 + b"1\r\n") == BAD
    assert conn.cmd(b"peek 1\r\n") == b"NOT_FOUND\r\n"


def test_crlf_straddling_the_224_byte_buffer_is_not_seen(conn: RawConnection) -> None:
    """The line buffer holds 224 bytes: in a 225-byte line the CR is the 224th byte and is
    discarded with the buffer, so the line only ends at the next CRLF (the next command is
    swallowed into the one BAD_FORMAT)."""
    conn.send(b"peek" + b" " * 218 + b"1\r\n")
    conn.assert_silent(0.1)
    conn.send(b"peek 1\r\npeek 1\r\n")
    assert conn.replies(2) == [BAD, b"NOT_FOUND\r\n"]


def test_stray_carriage_return_hides_the_line_end(conn: RawConnection) -> None:
    """Only the first CR of the buffer is checked for a following LF: ``use a\\rb\\r\\n``
    never ends, and later lines pile up until 224 bytes make it an overlong line."""
    conn.send(b"use a\rb\r\nlist-tube-used\r\n")
    conn.assert_silent(0.1)
    conn.send(b"x" * 300)
    conn.assert_silent(0.05)
    conn.send(b"\r\nlist-tube-used\r\n")
    assert conn.replies(2) == [BAD, b"USING default\r\n"]


def test_overlong_line_sent_in_pieces_is_discarded_up_to_its_crlf(conn: RawConnection) -> None:
    """An overlong line arriving in several packets yields exactly one BAD_FORMAT, once its
    CRLF arrives, and the next line parses normally."""
    conn.send(b"use " + b"x" * 300)
    conn.assert_silent(0.05)
    conn.send(b"y" * 300)
    conn.assert_silent(0.05)
    conn.send(b"\r\nlist-tube-used\r\n")
    assert conn.replies(2) == [BAD, b"USING default\r\n"]


def test_body_may_contain_carriage_returns(conn: RawConnection) -> None:
    """Bodies are read by length, so a CR inside one is just data."""
    assert conn.cmd(b"put 0 0 1 2\r\na\r\r\n") == b"INSERTED 1\r\n"
    assert conn.cmd(b"peek 1\r\n") == b"FOUND 1 2\r\na\r\r\n"


def test_nul_byte_in_a_line_is_bad_format(conn: RawConnection) -> None:
    """A NUL byte inside a command line makes it BAD_FORMAT."""
    assert conn.cmd(b"use a\x00b\r\n") == BAD
    assert conn.cmd(b"peek\x001\r\n") == BAD


def test_pipelined_commands_are_answered_in_order(conn: RawConnection) -> None:
    """Many commands in one send get their replies in order, bodies included."""
    conn.send(b"put 1 0 10 2\r\nhi\r\nuse t\r\npeek 1\r\nlist-tube-used\r\nstats-job 9\r\n")
    assert conn.replies(5) == [
        b"INSERTED 1\r\n",
        b"USING t\r\n",
        b"FOUND 1 2\r\nhi\r\n",
        b"USING t\r\n",
        b"NOT_FOUND\r\n",
    ]


def test_commands_after_a_blocked_reserve_wait_for_it(server: ServerTarget) -> None:
    """While a reserve blocks, the commands behind it on that connection are not answered."""
    with server.connect() as worker, server.connect() as producer:
        worker.send(b"reserve\r\nlist-tube-used\r\n")
        worker.assert_silent(0.1)
        assert producer.cmd(b"put 0 0 10 1\r\nx\r\n") == b"INSERTED 1\r\n"
        assert worker.replies(2) == [b"RESERVED 1 1\r\nx\r\n", b"USING default\r\n"]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"\r\n", UNKNOWN),
        (b"delete\r\n", UNKNOWN),
        (b"use\r\n", UNKNOWN),
        (b"kick\r\n", UNKNOWN),
        (b"pause-tube\r\n", BAD),
        (b"peek\r\n", UNKNOWN),
        (b"reserve-job\r\n", BAD),
        (b"stats-job\r\n", BAD),
        (b"stats-tube\r\n", BAD),
        (b"statsx\r\n", BAD),
        (b"reservex\r\n", BAD),
        (b"peek-readyx\r\n", BAD),
        (b"peek-ready \r\n", BAD),
        (b"list-tubesx\r\n", BAD),
        (b"list-tube-usedx\r\n", BAD),
        (b"list-tubes-watchedx\r\n", BAD),
        (b"STATS\r\n", UNKNOWN),
        (b" stats\r\n", UNKNOWN),
    ],
)
def test_commands_match_by_prefix(conn: RawConnection, line: bytes, reply: bytes) -> None:
    """An argument-taking command without its space is unknown, unless its name begins with
    an argument-less command (``reserve``, ``stats``); argument-less commands must match
    exactly; matching is case-sensitive."""
    assert conn.cmd(line) == reply


def test_quit_prefix_closes_the_connection_silently(conn: RawConnection) -> None:
    """Any line starting with ``quit`` closes the connection without a reply."""
    conn.send(b"quitter\r\nstats\r\n")
    conn.assert_closed()


def test_pause_tube_needs_no_space_before_the_tube_name(conn: RawConnection) -> None:
    """``pause-tubefoo 5`` pauses tube ``foo``; spaces before the name are skipped, but a
    trailing space after the duration is BAD_FORMAT."""
    assert conn.cmd(b"pause-tubefoo 5\r\n") == b"NOT_FOUND\r\n"
    assert conn.cmd(b"use foo\r\n") == b"USING foo\r\n"
    assert conn.cmd(b"pause-tubefoo 5\r\n") == b"PAUSED\r\n"
    assert conn.cmd(b"pause-tube    foo 5\r\n") == b"PAUSED\r\n"
    assert conn.cmd(b"pause-tube foo  5\r\n") == b"PAUSED\r\n"
    assert conn.cmd(b"pause-tube foo 5 \r\n") == BAD


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"peek   1\r\n", b"NOT_FOUND\r\n"),
        (b"peek 0\r\n", b"NOT_FOUND\r\n"),
        (b"peek 01\r\n", b"NOT_FOUND\r\n"),
        (b"peek 1 \r\n", BAD),
        (b"peek +1\r\n", BAD),
        (b"peek -1\r\n", BAD),
        (b"peek  \r\n", BAD),
        (b"peek 1\t\r\n", BAD),
        (b"release 1 2\r\n", BAD),
        (b"release 1 2 3 \r\n", BAD),
        (b"touch 18446744073709551615\r\n", b"NOT_FOUND\r\n"),
        (b"pause-tube default 4294967296\r\n", BAD),
        (b"put 0 4294967296 1 1\r\n", BAD),
        (b"put 0 0 4294967296 1\r\n", BAD),
    ],
)
def test_integers_take_leading_spaces_but_no_sign_overflow_or_trailing_bytes(
    conn: RawConnection, line: bytes, reply: bytes
) -> None:
    """Integer fields skip leading spaces and need a digit; signs, overflow and anything
    after the last field (even a space) are BAD_FORMAT."""
    assert conn.cmd(line) == reply


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"kick -1\r\n", b"KICKED 0\r\n"),
        (b"kick 5junk\r\n", b"KICKED 0\r\n"),
        (b"kick +3\r\n", b"KICKED 0\r\n"),
        (b"kick   3\r\n", b"KICKED 0\r\n"),
        (b"kick 4294967296\r\n", b"KICKED 0\r\n"),
        (b"kick 18446744073709551616\r\n", BAD),
        (b"kick abc\r\n", BAD),
        (b"kick \r\n", BAD),
    ],
)
def test_kick_count_is_parsed_with_strtoul(conn: RawConnection, line: bytes, reply: bytes) -> None:
    """``kick`` parses its bound with strtoul: signs are accepted, junk after the digits is
    ignored; only no digits or u64 overflow are BAD_FORMAT."""
    assert conn.cmd(line) == reply


def test_kick_minus_one_wraps_to_kick_everything(conn: RawConnection) -> None:
    """``kick -1`` wraps to 2^32-1 and kicks every buried job; ``kick 2junk`` kicks 2."""
    for job_id in range(1, 5):
        assert conn.cmd(b"put 0 0 10 1\r\nx\r\n") == b"INSERTED %d\r\n" % job_id
        assert conn.cmd(b"reserve-job %d\r\n" % job_id) == b"RESERVED %d 1\r\nx\r\n" % job_id
        assert conn.cmd(b"bury %d 0\r\n" % job_id) == b"BURIED\r\n"
    assert conn.cmd(b"kick 2junk\r\n") == b"KICKED 2\r\n"
    assert conn.cmd(b"kick -1\r\n") == b"KICKED 2\r\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"use A-Za-z0-9-+/;.$_()\r\n", b"USING A-Za-z0-9-+/;.$_()\r\n"),
        (b"use -a\r\n", BAD),
        (b"use a \r\n", BAD),
        (b"use  a\r\n", BAD),
        (b"use \r\n", BAD),
        (b"use a*b\r\n", BAD),
        (b"use a\tb\r\n", BAD),
        (b"use caf\xc3\xa9\r\n", BAD),
        (b"watch a b\r\n", BAD),
        (b"ignore -a\r\n", BAD),
        (b"stats-tube a!\r\n", BAD),
        (b"pause-tube a! 1\r\n", BAD),
    ],
)
def test_tube_names_follow_the_name_rules(conn: RawConnection, line: bytes, reply: bytes) -> None:
    """Tube names are 1-200 bytes of ``A-Z a-z 0-9 - + / ; . $ _ ( )``, not starting with
    ``-``, and fill the rest of the line (a trailing space is BAD_FORMAT)."""
    assert conn.cmd(line) == reply


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"reserve-with-timeout abc\r\n", b"TIMED_OUT\r\n"),
        (b"reserve-with-timeout 0 \r\n", b"TIMED_OUT\r\n"),
        (b"reserve-with-timeout 0x\r\n", b"TIMED_OUT\r\n"),
        (b"reserve-with-timeout  0\r\n", b"TIMED_OUT\r\n"),
        (b"reserve-with-timeout +0\r\n", b"TIMED_OUT\r\n"),
        (b"reserve-with-timeout 99999999999999999999\r\n", BAD),
    ],
)
def test_reserve_with_timeout_is_parsed_with_strtol(
    conn: RawConnection, line: bytes, reply: bytes
) -> None:
    """1.12 parses the timeout with strtol: no digits means 0, junk after is ignored, only
    overflow is BAD_FORMAT."""
    assert conn.cmd(line) == reply


def test_reserve_with_negative_timeout_blocks_like_reserve(server: ServerTarget) -> None:
    """``reserve-with-timeout -1`` waits with no time limit, like ``reserve``."""
    with server.connect() as worker, server.connect() as producer:
        worker.send(b"reserve-with-timeout -1\r\n")
        worker.assert_silent(0.2)
        assert producer.cmd(b"put 0 0 10 1\r\nx\r\n") == b"INSERTED 1\r\n"
        assert worker.reply() == b"RESERVED 1 1\r\nx\r\n"


def test_reserve_with_trailing_bytes_is_bad_format(conn: RawConnection) -> None:
    """Plain ``reserve`` allows nothing after it, not even a space."""
    started = time.monotonic()
    assert conn.cmd(b"reserve \r\n") == BAD
    assert time.monotonic() - started < 0.5
