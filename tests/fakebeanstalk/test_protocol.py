"""Command-line parsing alone, no server: prefixes, integers, tube names."""

from __future__ import annotations

import pytest

from fakebeanstalk.protocol import BAD_FORMAT, UNKNOWN_COMMAND, ParseError, PutArgs, parse_command


@pytest.mark.parametrize(
    ("line", "op", "args"),
    [
        (b"reserve", "reserve", ()),
        (b"reserve-with-timeout 5", "reserve-with-timeout", (5,)),
        (b"reserve-with-timeout -1", "reserve-with-timeout", (-1,)),
        (b"reserve-with-timeout junk", "reserve-with-timeout", (0,)),
        (b"reserve-with-timeout 2147483648", "reserve-with-timeout", (-(2**31),)),
        (b"kick -1", "kick", (2**32 - 1,)),
        (b"kick 7junk", "kick", (7,)),
        (b"delete   12", "delete", (12,)),
        (b"peek 18446744073709551615", "peek", (2**64 - 1,)),
        (b"pause-tubefoo 5", "pause-tube", ("foo", 5)),
        (b"pause-tube -foo 5", "pause-tube", (None, 5)),
        (b"quit now", "quit", ()),
        (b"use a-b+c/d;e.f$g_h(i)", "use", ("a-b+c/d;e.f$g_h(i)",)),
        (b"release 1 2 3", "release", (1, 2, 3)),
    ],
)
def test_valid_lines_parse(line: bytes, op: str, args: tuple[object, ...]) -> None:
    command = parse_command(line)
    assert (command.op, command.args) == (op, args)


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"", UNKNOWN_COMMAND),
        (b"delete", UNKNOWN_COMMAND),
        (b"peek", UNKNOWN_COMMAND),
        (b"reserve-job", BAD_FORMAT),
        (b"stats-job", BAD_FORMAT),
        (b"stats-tube", BAD_FORMAT),
        (b"statsx", BAD_FORMAT),
        (b"delete 1 ", BAD_FORMAT),
        (b"delete +1", BAD_FORMAT),
        (b"peek 18446744073709551616", BAD_FORMAT),
        (b"kick x", BAD_FORMAT),
        (b"kick 18446744073709551616", BAD_FORMAT),
        (b"reserve-with-timeout 9223372036854775808", BAD_FORMAT),
        (b"use foo ", BAD_FORMAT),
        (b"use -foo", BAD_FORMAT),
        (b"use " + b"a" * 201, BAD_FORMAT),
        (b"watch ", BAD_FORMAT),
        (b"stats\x00", BAD_FORMAT),
        (b"put 4294967296 0 1 1", BAD_FORMAT),
        (b"pause-tube foo", BAD_FORMAT),
    ],
)
def test_invalid_lines_get_their_reply(line: bytes, reply: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(line)
    assert caught.value.reply == reply


def test_put_reports_trailing_garbage_for_the_server_to_judge_after_the_size() -> None:
    (args,) = parse_command(b"put 1 2 3 4 x").args
    assert isinstance(args, PutArgs)
    assert (args.pri, args.delay, args.ttr, args.size, args.garbage) == (1, 2, 3, 4, True)
