"""What travels on a beanstalkd connection: replies, parsed stats, and the wake-up pipe.

The pieces of :mod:`kqueue.broker` that hold no connection state.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from typing import NamedTuple

from kqueue.errors import BrokerError

StatsValue = int | str
Stats = dict[str, StatsValue]

POLL_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


class Reply(NamedTuple):
    """One reply line (split into its word and arguments) and its body, if it has one.

    Named tuples, not frozen dataclasses: one is built per reply, and a frozen dataclass
    costs several times more to build."""

    word: bytes
    args: tuple[bytes, ...]
    body: bytes | None = None


class ReservedJob(NamedTuple):
    """A job id and body returned by reserve, reserve-job or peek."""

    id: int
    body: bytes


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


def parse_yaml_dict(body: bytes) -> Stats:
    """Parse beanstalkd's flat YAML stats body into a dict; numbers become ints."""
    result: Stats = {}
    for line in body.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        value = value.strip().strip('"')
        result[key] = int(value) if value.isdigit() else value
    return result


def parse_yaml_list(body: bytes) -> list[str]:
    """Parse beanstalkd's YAML list of tube names."""
    return [line[2:] for line in body.decode("utf-8", "replace").splitlines() if line[:2] == "- "]


def readable(sock: socket.socket, timeout: float) -> bool:
    """True if ``sock`` has input (or EOF) within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(sock, POLL_IN)
    return bool(poller.poll(max(0, timeout) * 1000))


def writable(sock: socket.socket, timeout: float) -> bool:
    """True if ``sock`` accepts output within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(max(0, timeout) * 1000))


class Wakeup:
    """A pipe that interrupts a waiting reserve from another thread or a signal handler."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    @property
    def fd(self) -> int:
        """The descriptor to poll."""
        return self._read

    def set(self) -> None:
        """Wake the waiter (safe from signal handlers)."""
        with contextlib.suppress(BlockingIOError):  # already full of wake-ups
            os.write(self._write, b"x")

    def clear(self) -> None:
        """Forget pending wake-ups."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        """Close both ends."""
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
