"""Fixtures of fakebeanstalk's own tests: raw socket clients of a fake server."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from fakebeanstalk import FakeBeanstalkServer


class Raw:
    """A blocking raw-bytes client: send lines, read exact replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; got {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def read_exact(self, size: int) -> bytes:
        while len(self.buf) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; got {self.buf!r}")
            self.buf += chunk
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def reply(self) -> bytes:
        """One whole reply, with its body when it has one."""
        line = self.read_line()
        word, *rest = line.split()
        if word in (b"OK", b"RESERVED", b"FOUND"):
            return line + self.read_exact(int(rest[-1]) + 2)
        return line

    def cmd(self, data: bytes) -> bytes:
        self.send(data)
        return self.reply()

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


RawFactory = Callable[..., Raw]


@pytest.fixture
def connect(fakebeanstalk: FakeBeanstalkServer) -> Iterator[RawFactory]:
    """Open raw connections to the test's ``fakebeanstalk`` server (closed afterwards)."""
    opened: list[Raw] = []

    def make(server: FakeBeanstalkServer | None = None, timeout: float = 5.0) -> Raw:
        target = server or fakebeanstalk
        raw = Raw(socket.create_connection(target.address, timeout=timeout))
        opened.append(raw)
        return raw

    yield make
    for raw in opened:
        raw.close()


def stats_of(reply: bytes) -> dict[str, str]:
    """Parse an ``OK <n>`` YAML dict reply."""
    body = reply.split(b"\r\n", 1)[1]
    pairs = (line.split(": ", 1) for line in body.decode().splitlines()[1:] if ": " in line)
    return {key: value for key, value in pairs}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` (for state another thread will reach soon), failing after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)
