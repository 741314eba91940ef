"""A raw beanstalkd client for conformance tests: bytes out, exact bytes back, with timeouts.

No client library sits between a test and the server: a test sends the bytes it means and
reads back exactly the bytes of one reply, so that the real server and the fake can be
compared byte for byte.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterable

#: Replies that carry a data chunk after their line: the last field is its length.
_BODY_REPLY = re.compile(rb"^(OK|FOUND \d+|RESERVED \d+) (\d+)\r\n$")

#: Keys whose values change from one process or one moment to the next.
VOLATILE_STATS_KEYS: frozenset[str] = frozenset(
    {
        "pid",
        "version",
        "rusage-utime",
        "rusage-stime",
        "uptime",
        "id",
        "hostname",
        "os",
        "platform",
        # time-derived fields of stats-job and stats-tube
        "age",
        "time-left",
        "pause-time-left",
    }
)

DEFAULT_TIMEOUT = 2.0


class ReplyTimeout(AssertionError):
    """The server did not send the expected bytes in time."""


class ConnectionClosed(AssertionError):
    """The server closed the connection while a reply was expected."""


class RawConnection:
    """One socket to a beanstalkd-speaking server, read reply by reply.

    Bytes that arrive beyond the reply being read are kept for the next read, so pipelined
    replies are split exactly where the protocol says.
    """

    def __init__(self, sock: socket.socket, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = sock
        self.timeout = timeout
        self._buffer = bytearray()
        self.closed_by_peer = False

    @classmethod
    def tcp(cls, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> RawConnection:
        """Connect over TCP with Nagle off, as beanstalkd's own suite does."""
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock, timeout=timeout)

    @classmethod
    def unix(cls, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> RawConnection:
        """Connect over a unix stream socket."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
        return cls(sock, timeout=timeout)

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send raw bytes, all of them, in as few packets as the kernel allows."""
        self.sock.sendall(data)

    def half_close(self) -> None:
        """Shut down our sending side (the server sees end of input)."""
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        self.sock.close()

    # -- receiving -------------------------------------------------------------------------

    def _fill(self, deadline: float, wanted: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout(f"timed out waiting for {wanted}; got {bytes(self._buffer)!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise ReplyTimeout(
                f"timed out waiting for {wanted}; got {bytes(self._buffer)!r}"
            ) from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed_by_peer = True
            raise ConnectionClosed(f"connection closed waiting for {wanted}")
        self._buffer += chunk

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def read_line(self, *, timeout: float | None = None) -> bytes:
        """Read one line up to and including CRLF."""
        deadline = self._deadline(timeout)
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._fill(deadline, "a line")
        line = bytes(self._buffer[: end + 2])
        del self._buffer[: end + 2]
        return line

    def read_exact(self, size: int, *, timeout: float | None = None) -> bytes:
        """Read exactly ``size`` bytes."""
        deadline = self._deadline(timeout)
        while len(self._buffer) < size:
            self._fill(deadline, f"{size} bytes")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def reply(self, *, timeout: float | None = None) -> bytes:
        """Read one whole reply: its line, and its data chunk with CRLF when it has one."""
        deadline = self._deadline(timeout)
        line = self.read_line(timeout=max(deadline - time.monotonic(), 0.001))
        match = _BODY_REPLY.match(line)
        if match is None:
            return line
        body = self.read_exact(
            int(match.group(2)) + 2, timeout=max(deadline - time.monotonic(), 0.001)
        )
        return line + body

    def cmd(self, data: bytes, *, timeout: float | None = None) -> bytes:
        """Send one command (bytes as given) and read its one reply."""
        self.send(data)
        return self.reply(timeout=timeout)

    def replies(self, count: int, *, timeout: float | None = None) -> list[bytes]:
        """Read ``count`` replies in order."""
        return [self.reply(timeout=timeout) for _ in range(count)]

    def assert_silent(self, duration: float) -> None:
        """Assert that nothing arrives (and the connection stays open) for ``duration`` s."""
        deadline = time.monotonic() + duration
        while not self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return
            if not chunk:
                raise ConnectionClosed("connection closed while expecting silence")
            self._buffer += chunk
        raise AssertionError(f"unexpected bytes: {bytes(self._buffer)!r}")

    def assert_closed(self, *, timeout: float | None = None) -> None:
        """Assert that the server closes the connection without sending anything more."""
        deadline = self._deadline(timeout)
        try:
            while True:
                self._fill(deadline, "end of stream")
        except ConnectionClosed:
            pass
        assert not self._buffer, f"bytes before close: {bytes(self._buffer)!r}"

    def recv_some(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for bytes and buffer them; False once the peer has closed."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed_by_peer = True
            return False
        self._buffer += chunk
        return True

    def take_buffered(self) -> bytes:
        """Everything received and not yet read, removed from the buffer."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def pending(self) -> bytes:
        """Bytes received but not yet consumed by a read."""
        return bytes(self._buffer)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def put_cmd(
    body: bytes, *, pri: int = 0, delay: int = 0, ttr: int = 1, size: int | None = None
) -> bytes:
    """The bytes of a put command with its body."""
    length = len(body) if size is None else size
    return b"put %d %d %d %d\r\n%s\r\n" % (pri, delay, ttr, length, body)


def stats_body(reply: bytes) -> list[tuple[str, str]]:
    """The ``key: value`` pairs of an ``OK <n>`` stats reply, in order."""
    match = _BODY_REPLY.match(reply[: reply.find(b"\r\n") + 2])
    assert match is not None and match.group(1) == b"OK", f"not an OK reply: {reply!r}"
    body = reply[reply.find(b"\r\n") + 2 : -2]
    assert int(match.group(2)) == len(body), f"OK length {match.group(2)!r} != {len(body)}"
    assert body.startswith(b"---\n"), body
    pairs = []
    for line in body[4:].decode().splitlines():
        key, _, value = line.partition(": ")
        pairs.append((key, value))
    return pairs


def stats_dict(reply: bytes) -> dict[str, str]:
    """The stats reply as a dict (order dropped)."""
    return dict(stats_body(reply))


def mask_stats(reply: bytes, keys: Iterable[str] = VOLATILE_STATS_KEYS) -> bytes:
    """A stats reply with volatile values replaced by ``*`` and its length by ``*``.

    Any other reply is returned unchanged, so this can be applied to every reply.
    """
    if not reply.startswith(b"OK ") or b"\n---\n" not in reply[:40]:
        return reply
    masked = set(keys)
    header_end = reply.find(b"\r\n") + 2
    out = []
    for line in reply[header_end:-2].split(b"\n"):
        key, sep, _ = line.partition(b": ")
        out.append(key + sep + b"*" if sep and key.decode() in masked else line)
    return b"OK *\r\n" + b"\n".join(out) + b"\r\n"


def ok_reply(body: bytes) -> bytes:
    """The exact bytes of an ``OK <n>`` reply carrying ``body``."""
    return b"OK %d\r\n%s\r\n" % (len(body), body)


def split_replies(data: bytes) -> tuple[list[bytes], bytes]:
    """Cut a stream of server output into whole replies; return them and the leftover."""
    replies = []
    rest = data
    while (end := rest.find(b"\r\n")) >= 0:
        line = rest[: end + 2]
        match = _BODY_REPLY.match(line)
        size = 0 if match is None else int(match.group(2)) + 2
        if len(rest) < len(line) + size:
            break
        replies.append(rest[: len(line) + size])
        rest = rest[len(line) + size :]
    return replies, rest
