"""What travels on a beanstalkd connection, parsed: replies, job bodies, stats. No I/O here.

:func:`parse_replies` turns bytes read from a socket into :class:`Reply` tuples; the sync
connection and any other transport share it. Stats replies are typed as :class:`ServerStats`,
:class:`TubeStats` and :class:`JobStats` (beanstalkd's YAML keys, numbers as ints).
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict, cast

from kqueue.errors import BrokerError

StatsValue = int | str


class Reply(NamedTuple):
    """One reply line (split into its word and arguments) and its body, if it has one.

    Named tuples, not frozen dataclasses: one is built per reply."""

    word: bytes
    args: tuple[bytes, ...]
    body: bytes | None = None


class ReservedJob(NamedTuple):
    """A job id and body returned by reserve, reserve-job or peek."""

    id: int
    body: bytes


ServerStats = TypedDict(
    "ServerStats",
    {
        "id": str,
        "version": str,
        "hostname": str,
        "pid": int,
        "uptime": int,
        "max-job-size": int,
        "current-jobs-urgent": int,
        "current-jobs-ready": int,
        "current-jobs-reserved": int,
        "current-jobs-delayed": int,
        "current-jobs-buried": int,
        "current-tubes": int,
        "current-connections": int,
        "current-producers": int,
        "current-workers": int,
        "current-waiting": int,
        "total-jobs": int,
        "total-connections": int,
        "job-timeouts": int,
        "draining": str,
        "binlog-current-index": int,
        "binlog-oldest-index": int,
        "binlog-max-size": int,
        "binlog-records-written": int,
        "binlog-records-migrated": int,
    },
    total=False,
)
"""``stats``: the server's counters (every key beanstalkd 1.12 sends is there; the common
ones are typed here)."""

TubeStats = TypedDict(
    "TubeStats",
    {
        "name": str,
        "current-jobs-urgent": int,
        "current-jobs-ready": int,
        "current-jobs-reserved": int,
        "current-jobs-delayed": int,
        "current-jobs-buried": int,
        "total-jobs": int,
        "current-using": int,
        "current-waiting": int,
        "current-watching": int,
        "pause": int,
        "cmd-delete": int,
        "cmd-pause-tube": int,
        "pause-time-left": int,
    },
    total=False,
)
"""``stats-tube``: one tube's counts and pause."""

JobStats = TypedDict(
    "JobStats",
    {
        "id": int,
        "tube": str,
        "state": str,
        "pri": int,
        "age": int,
        "delay": int,
        "ttr": int,
        "time-left": int,
        "file": int,
        "reserves": int,
        "timeouts": int,
        "releases": int,
        "buries": int,
        "kicks": int,
    },
    total=False,
)
"""``stats-job``: one job's state and counters."""


class PipelineBroken(Exception):
    """A pipeline lost its connection part way: the replies read, and the error for the rest."""

    def __init__(self, error: BrokerError, replies: list[Reply]) -> None:
        super().__init__(str(error))
        self.error = error
        self.replies = replies


BODY_SIZE_ARG = {b"RESERVED": 1, b"FOUND": 1, b"OK": 0}
"""Replies followed by a body, and which argument gives the body's size."""


class MalformedReply(Exception):
    """A reply that does not follow the protocol (the connection cannot be trusted after it)."""


def parse_replies(buf: bytearray, pos: int, limit: int) -> tuple[list[Reply], int]:
    """Up to ``limit`` whole replies from ``buf[pos:]``, and the offset after the last one.

    A reply whose body has not fully arrived ends the list (nothing is copied for it yet, so
    a large body arriving in pieces costs no repeated copies). A malformed reply raises
    :class:`MalformedReply` only when it comes first: the replies before it are returned.
    """
    replies: list[Reply] = []
    find = buf.find
    available = len(buf)
    while len(replies) < limit:
        end = find(b"\r\n", pos)
        if end < 0:
            break
        word, *rest = bytes(buf[pos:end]).split(b" ")
        size_arg = BODY_SIZE_ARG.get(word)
        if size_arg is None:
            replies.append(Reply(word, tuple(rest)))
            pos = end + 2
            continue
        try:
            size = int(rest[size_arg])
        except (IndexError, ValueError) as exc:
            if replies:  # hand over the good ones first: the caller must know what went through
                break
            raise MalformedReply(f"malformed reply {bytes(buf[pos:end])!r}") from exc
        total = end + 2 + size + 2
        if available < total:
            break
        if buf[total - 2 : total] != b"\r\n":
            if replies:
                break
            raise MalformedReply("reply body not followed by CRLF")
        replies.append(Reply(word, tuple(rest), bytes(buf[end + 2 : total - 2])))
        pos = total
    return replies, pos


_TEXT_KEYS = frozenset({"id", "version", "hostname", "os", "platform", "name", "tube", "state"})
"""Stats keys whose values are text even when they look like numbers (a server id may be
all digits; a tube may be named ``123``)."""


def parse_yaml_dict(body: bytes) -> dict[str, StatsValue]:
    """Parse beanstalkd's flat YAML stats body into a dict; numbers become ints."""
    result: dict[str, StatsValue] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        value = value.strip().strip('"')
        result[key] = int(value) if value.isdigit() and key not in _TEXT_KEYS else value
    return result


def parse_server_stats(body: bytes) -> ServerStats:
    """A ``stats`` body."""
    return cast(ServerStats, parse_yaml_dict(body))


def parse_tube_stats(body: bytes) -> TubeStats:
    """A ``stats-tube`` body."""
    return cast(TubeStats, parse_yaml_dict(body))


def parse_job_stats(body: bytes) -> JobStats:
    """A ``stats-job`` body."""
    return cast(JobStats, parse_yaml_dict(body))


def parse_yaml_list(body: bytes) -> list[str]:
    """Parse beanstalkd's YAML list of tube names."""
    return [line[2:] for line in body.decode("utf-8", "replace").splitlines() if line[:2] == "- "]
