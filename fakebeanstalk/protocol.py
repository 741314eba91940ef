"""The beanstalkd 1.12 wire format: command lines to commands, and every reply's bytes.

Parsing reproduces beanstalkd's own (prot.c): commands match by prefix in a fixed order,
integers skip leading spaces and need a digit, ``kick`` uses strtoul and
``reserve-with-timeout`` strtol, tube names fill the rest of the line. A parse either yields a
:class:`Command` (which the server counts in its ``cmd-*`` stats) or an error reply (which
it does not count).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = [
    "BAD_FORMAT",
    "BURIED",
    "DEADLINE_SOON",
    "DELETED",
    "DRAINING",
    "EXPECTED_CRLF",
    "INTERNAL_ERROR",
    "JOB_TOO_BIG",
    "KICKED",
    "LINE_MAX",
    "MAX_TUBE_NAME",
    "NOT_FOUND",
    "NOT_IGNORED",
    "OUT_OF_MEMORY",
    "PAUSED",
    "RELEASED",
    "TIMED_OUT",
    "TOUCHED",
    "UNKNOWN_COMMAND",
    "Command",
    "ParseError",
    "PutArgs",
    "body_reply",
    "inserted",
    "job_reply",
    "kicked",
    "list_body",
    "parse_command",
    "stats_body",
    "using",
    "valid_tube_name",
    "watching",
]

# Limits (dat.h).
LINE_MAX = 224
"""Longest command line, CRLF included (11 + 201 + 12 in beanstalkd)."""
MAX_TUBE_NAME = 200
URGENT_THRESHOLD = 1024
DEFAULT_MAX_JOB_SIZE = 65535
MAX_JOB_SIZE_LIMIT = 1 << 30
BINLOG_MAX_SIZE = 10485760
VERSION = "1.12"
SAFETY_MARGIN_NS = 1_000_000_000
NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()")

# Every fixed reply, byte for byte.
NOT_FOUND = b"NOT_FOUND\r\n"
DEADLINE_SOON = b"DEADLINE_SOON\r\n"
TIMED_OUT = b"TIMED_OUT\r\n"
DELETED = b"DELETED\r\n"
RELEASED = b"RELEASED\r\n"
BURIED = b"BURIED\r\n"
KICKED = b"KICKED\r\n"
TOUCHED = b"TOUCHED\r\n"
PAUSED = b"PAUSED\r\n"
NOT_IGNORED = b"NOT_IGNORED\r\n"
OUT_OF_MEMORY = b"OUT_OF_MEMORY\r\n"
INTERNAL_ERROR = b"INTERNAL_ERROR\r\n"
DRAINING = b"DRAINING\r\n"
BAD_FORMAT = b"BAD_FORMAT\r\n"
UNKNOWN_COMMAND = b"UNKNOWN_COMMAND\r\n"
EXPECTED_CRLF = b"EXPECTED_CRLF\r\n"
JOB_TOO_BIG = b"JOB_TOO_BIG\r\n"
FOUND_WORD = b"FOUND"
RESERVED_WORD = b"RESERVED"

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
_C_SPACE = b" \t\n\v\f\r"
_DIGITS = frozenset(b"0123456789")


def inserted(job_id: int) -> bytes:
    """``INSERTED <id>``."""
    return b"INSERTED %d\r\n" % job_id


def kicked(count: int) -> bytes:
    """``KICKED <count>`` (the reply of ``kick``)."""
    return b"KICKED %d\r\n" % count


def watching(count: int) -> bytes:
    """``WATCHING <count>``."""
    return b"WATCHING %d\r\n" % count


def using(name: str) -> bytes:
    """``USING <tube>``."""
    return b"USING " + name.encode("ascii") + b"\r\n"


def job_reply(word: bytes, job_id: int, body: bytes) -> bytes:
    """``FOUND``/``RESERVED <id> <bytes>`` then the body and CRLF."""
    return b"%s %d %d\r\n%s\r\n" % (word, job_id, len(body), body)


def body_reply(body: bytes) -> bytes:
    """``OK <bytes>`` then a YAML body that already ends with CRLF (not counted)."""
    return b"OK %d\r\n" % (len(body) - 2) + body


def stats_body(fields: Iterable[tuple[str, object]]) -> bytes:
    """A stats YAML body: ``---`` then one ``key: value`` line per field, then CRLF."""
    lines = "".join(f"{key}: {value}\n" for key, value in fields)
    return b"---\n" + lines.encode("utf-8", "replace") + b"\r\n"


def list_body(names: Iterable[str]) -> bytes:
    """A YAML list body of tube names, then CRLF."""
    return b"---\n" + "".join(f"- {name}\n" for name in names).encode("ascii") + b"\r\n"


def valid_tube_name(name: bytes) -> bool:
    """1 to 200 bytes of beanstalkd's name characters, not starting with ``-``."""
    return (
        0 < len(name) <= MAX_TUBE_NAME
        and name[0] != 0x2D
        and all(byte in NAME_CHARS for byte in name)
    )


class ParseError(Exception):
    """A command line that gets an error reply and is not counted."""

    def __init__(self, reply: bytes) -> None:
        """Carry the reply to send (``BAD_FORMAT`` or ``UNKNOWN_COMMAND``)."""
        super().__init__(reply.decode("ascii").strip())
        self.reply = reply


_BAD = ParseError(BAD_FORMAT)


class PutArgs:
    """The parsed fields of a ``put`` line."""

    __slots__ = ("delay", "garbage", "pri", "size", "ttr")

    def __init__(self, pri: int, delay: int, ttr: int, size: int, garbage: bool) -> None:
        """Priority, delay and ttr in seconds, body size, and whether junk followed."""
        self.pri = pri
        self.delay = delay
        self.ttr = ttr
        self.size = size
        self.garbage = garbage


class Command:
    """One parsed command: its stats name (``op``) and its arguments."""

    __slots__ = ("args", "op")

    def __init__(self, op: str, args: tuple[object, ...]) -> None:
        """``op`` is the command name as in ``cmd-<op>``; ``args`` depend on it."""
        self.op = op
        self.args = args

    def __repr__(self) -> str:
        return f"Command({self.op!r}, {self.args!r})"


def _read_uint(line: bytes, pos: int, limit: int) -> tuple[int, int]:
    """beanstalkd's read_u32/read_u64: skip spaces, need a digit, no sign, no overflow."""
    end = len(line)
    while pos < end and line[pos] == 0x20:
        pos += 1
    start = pos
    while pos < end and line[pos] in _DIGITS:
        pos += 1
    if pos == start:
        raise _BAD
    value = int(line[start:pos])
    if value > limit:
        raise _BAD
    return value, pos


def _read_whole_uint(rest: bytes, limit: int) -> int:
    value, pos = _read_uint(rest, 0, limit)
    if pos != len(rest):
        raise _BAD
    return value


def _c_strto(rest: bytes) -> tuple[int, bool] | None:
    """C strtol/strtoul prefix scan: (signed magnitude, found digits) or None if no digits."""
    pos, end = 0, len(rest)
    while pos < end and rest[pos] in _C_SPACE:
        pos += 1
    negative = False
    if pos < end and rest[pos] in b"+-":
        negative = rest[pos] == 0x2D
        pos += 1
    start = pos
    while pos < end and rest[pos] in _DIGITS:
        pos += 1
    if pos == start:
        return None
    magnitude = int(rest[start:pos])
    return (-magnitude if negative else magnitude), True


def _parse_put(rest: bytes) -> tuple[object, ...]:
    pri, pos = _read_uint(rest, 0, U32_MAX)
    delay, pos = _read_uint(rest, pos, U32_MAX)
    ttr, pos = _read_uint(rest, pos, U32_MAX)
    size, pos = _read_uint(rest, pos, U32_MAX)
    return (PutArgs(pri, delay, ttr, size, pos != len(rest)),)


def _parse_id(rest: bytes) -> tuple[object, ...]:
    return (_read_whole_uint(rest, U64_MAX),)


def _parse_none(rest: bytes) -> tuple[object, ...]:
    if rest:
        raise _BAD
    return ()


def _parse_anything(rest: bytes) -> tuple[object, ...]:
    return ()


def _parse_tube(rest: bytes) -> tuple[object, ...]:
    if not valid_tube_name(rest):
        raise _BAD
    return (rest.decode("ascii"),)


def _parse_release(rest: bytes) -> tuple[object, ...]:
    job_id, pos = _read_uint(rest, 0, U64_MAX)
    pri, pos = _read_uint(rest, pos, U32_MAX)
    delay = _read_whole_uint(rest[pos:], U32_MAX)
    return (job_id, pri, delay)


def _parse_bury(rest: bytes) -> tuple[object, ...]:
    job_id, pos = _read_uint(rest, 0, U64_MAX)
    return (job_id, _read_whole_uint(rest[pos:], U32_MAX))


def _parse_kick(rest: bytes) -> tuple[object, ...]:
    scanned = _c_strto(rest)
    if scanned is None:
        raise _BAD
    value = scanned[0]
    if abs(value) > U64_MAX:
        raise _BAD  # strtoul: ERANGE
    # strtoul negates in unsigned long, then the server keeps an unsigned int.
    return ((value % (1 << 64)) & U32_MAX,)


def _parse_reserve_timeout(rest: bytes) -> tuple[object, ...]:
    scanned = _c_strto(rest)
    value = 0 if scanned is None else scanned[0]
    if not -(1 << 63) <= value < (1 << 63):
        raise _BAD  # strtol: ERANGE
    # The long is stored in an int: keep the low 32 bits, signed.
    value &= U32_MAX
    if value >= 1 << 31:
        value -= 1 << 32
    return (value,)


def _parse_pause(rest: bytes) -> tuple[object, ...]:
    pos, end = 0, len(rest)
    while pos < end and rest[pos] == 0x20:
        pos += 1
    start = pos
    while pos < end and rest[pos] in NAME_CHARS:
        pos += 1
    if pos == start:
        raise _BAD
    delay = _read_whole_uint(rest[pos:], U32_MAX)
    name = rest[start:pos]
    # The name is checked after the command was counted: None means BAD_FORMAT then.
    return (name.decode("ascii") if valid_tube_name(name) else None, delay)


_Parser = Callable[[bytes], tuple[object, ...]]

# Prefix order matters: it is beanstalkd's which_cmd() order.
_COMMANDS: tuple[tuple[bytes, str, _Parser], ...] = (
    (b"put ", "put", _parse_put),
    (b"peek ", "peek", _parse_id),
    (b"peek-ready", "peek-ready", _parse_none),
    (b"peek-delayed", "peek-delayed", _parse_none),
    (b"peek-buried", "peek-buried", _parse_none),
    (b"reserve-with-timeout ", "reserve-with-timeout", _parse_reserve_timeout),
    (b"reserve-job ", "reserve-job", _parse_id),
    (b"reserve", "reserve", _parse_none),
    (b"delete ", "delete", _parse_id),
    (b"release ", "release", _parse_release),
    (b"bury ", "bury", _parse_bury),
    (b"kick ", "kick", _parse_kick),
    (b"kick-job ", "kick-job", _parse_id),
    (b"touch ", "touch", _parse_id),
    (b"stats-job ", "stats-job", _parse_id),
    (b"stats-tube ", "stats-tube", _parse_tube),
    (b"stats", "stats", _parse_none),
    (b"use ", "use", _parse_tube),
    (b"watch ", "watch", _parse_tube),
    (b"ignore ", "ignore", _parse_tube),
    (b"list-tubes-watched", "list-tubes-watched", _parse_none),
    (b"list-tube-used", "list-tube-used", _parse_none),
    (b"list-tubes", "list-tubes", _parse_none),
    (b"quit", "quit", _parse_anything),
    (b"pause-tube", "pause-tube", _parse_pause),
)

COMMAND_NAMES: tuple[str, ...] = tuple(name for _, name, _ in _COMMANDS)


def parse_command(line: bytes) -> Command:
    """Parse one command line (without its CRLF), or raise :class:`ParseError`."""
    if b"\0" in line:
        raise _BAD
    for prefix, op, parser in _COMMANDS:
        if line.startswith(prefix):
            return Command(op, parser(line[len(prefix) :]))
    raise ParseError(UNKNOWN_COMMAND)
