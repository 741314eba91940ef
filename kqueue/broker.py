"""The beanstalkd connection layer: one socket, replies matched in order, errors translated.

Commands go one per round trip through the methods below, or many at once through
:meth:`BeanstalkConnection.pipeline` (see :mod:`kqueue.pipeline`): a burst is written in one
``send`` and its replies are matched in order, which is what makes batches cheap.

kqueue speaks the beanstalkd protocol itself rather than through greenstalk because a worker
must wait for a job with a sub-second deadline and wake at once on ``stop()``: the reply wait is
a ``poll`` on the socket and a wake-up descriptor, with a timeout on every read. Every socket
error becomes :class:`~kqueue.errors.BrokerConnectionError` naming the address.

A connection remembers the tube it uses and the tubes it watches and restores them when it
reconnects, so callers survive a broker restart by simply issuing the next command.
"""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from typing import TYPE_CHECKING

from kqueue.errors import (
    BrokerConnectionError,
    BrokerDrainingError,
    BrokerError,
    BrokerProtocolError,
    BrokerServerError,
    BrokerTimeoutError,
    JobTooBigError,
)
from kqueue.inspection import InspectionCommands
from kqueue.wire import (
    POLL_IN,
    MalformedReply,
    PipelineBroken,
    Reply,
    ReservedJob,
    Stats,
    StatsValue,
    Wakeup,
    parse_replies,
    parse_yaml_dict,
    parse_yaml_list,
    readable,
)

if TYPE_CHECKING:
    from kqueue.pipeline import Pipeline

__all__ = [
    "BeanstalkConnection",
    "DeadlineSoon",
    "PipelineBroken",
    "Reply",
    "ReservedJob",
    "Stats",
    "StatsValue",
    "Wakeup",
    "parse_yaml_dict",
    "parse_yaml_list",
]

# Replies that carry a body, and which argument holds the body's size.
_ERROR_REPLIES: dict[bytes, type[BrokerError] | type[JobTooBigError]] = {
    b"OUT_OF_MEMORY": BrokerServerError,
    b"INTERNAL_ERROR": BrokerServerError,
    b"BAD_FORMAT": BrokerProtocolError,
    b"UNKNOWN_COMMAND": BrokerProtocolError,
    b"EXPECTED_CRLF": BrokerProtocolError,
    b"JOB_TOO_BIG": JobTooBigError,
    b"DRAINING": BrokerDrainingError,
}
_RECV_SIZE = 256 * 1024
# A connection idle this long is checked for a server-side close before it is used again.
_IDLE_CHECK_AFTER = 0.5


class DeadlineSoon(BrokerError):
    """The connection holds a reserved job whose TTR is about to run out (DEADLINE_SOON)."""


class BeanstalkConnection(InspectionCommands):
    """One beanstalkd connection. Thread-safe: one command at a time."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11300,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._pos = 0  # parsed up to here; compacted once per recv, not once per reply
        self._lock = threading.RLock()
        self._used = "default"
        self._watched: list[str] = ["default"]
        self._server_stats: Stats | None = None
        self._pollers: dict[int | None, select.poll] = {}
        self._last_reply = 0.0
        self._proven = False

    @property
    def address(self) -> str:
        """``host:port`` of the server, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while a socket is open (it may still turn out to be dead)."""
        return self._sock is not None

    def __repr__(self) -> str:
        state = "open" if self._sock else "closed"
        return f"<BeanstalkConnection {self.address} {state}>"

    # -- connection life -------------------------------------------------------------------

    def connect(self) -> None:
        """Open the socket and restore the used and watched tubes."""
        with self._lock:
            self.close()
            try:
                sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            except OSError as exc:
                raise BrokerConnectionError(
                    f"cannot connect to beanstalkd at {self.address}: {exc}"
                ) from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self._sock = sock
            self._proven = False
            self._server_stats = None
            self._restore_tubes()

    def _restore_tubes(self) -> None:
        if self._used != "default":
            self._call(b"use %s" % self._used.encode(), (b"USING",))
        for tube in self._watched:
            if tube != "default":
                self._call(b"watch %s" % tube.encode(), (b"WATCHING",))
        if "default" not in self._watched:
            self._call(b"ignore default", (b"WATCHING", b"NOT_IGNORED"))

    def close(self) -> None:
        """Close the socket; reserved jobs go back to ready at once on the server."""
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.close()
                finally:
                    self._sock = None
                    self._buf.clear()
                    self._pos = 0
                    self._pollers.clear()

    def _ensure_open(self) -> socket.socket:
        sock = self._sock
        if (
            sock is not None
            and not self._buf
            and time.monotonic() - self._last_reply > _IDLE_CHECK_AFTER
            and readable(sock, 0)
        ):
            # The server never speaks unasked: readable while idle means EOF (it restarted).
            self.close()
            sock = None
        if sock is None:
            self.connect()
            sock = self._sock
            assert sock is not None
        return sock

    def _lost(self, exc: BaseException | str) -> BrokerConnectionError:
        self.close()
        return BrokerConnectionError(f"connection to beanstalkd at {self.address} lost: {exc}")

    # -- bytes on the wire -----------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        sock = self._ensure_open()
        view = memoryview(data)
        deadline = time.monotonic() + self.command_timeout
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                # The server may be blocked writing replies to a long pipeline: read them
                # meanwhile, or neither side would ever move again.
                if not self._wait_writable(sock, deadline):
                    self.close()
                    raise BrokerTimeoutError(
                        f"beanstalkd at {self.address}: send timed out"
                    ) from None
                continue
            except OSError as exc:
                raise self._lost(exc) from exc
            view = view[sent:]
            deadline = time.monotonic() + self.command_timeout

    def _wait_writable(self, sock: socket.socket, deadline: float) -> bool:
        poller = select.poll()
        poller.register(sock, select.POLLOUT | POLL_IN)
        events = poller.poll(max(0, math.ceil((deadline - time.monotonic()) * 1000)))
        if not events:
            return False
        if any(mask & POLL_IN for _, mask in events):
            self._recv_into_buffer(sock)
        return True

    def _fill(self, deadline: float | None, wakeup: int | None) -> bool:
        """Read more bytes; False when the deadline passed or ``wakeup`` became readable."""
        sock = self._sock
        if sock is None:
            raise self._lost("closed while waiting for a reply")
        poller = self._poller(sock, wakeup)
        timeout_ms = None if deadline is None else max(0, (deadline - time.monotonic()) * 1000)
        events = poller.poll(None if timeout_ms is None else math.ceil(timeout_ms))
        if not events:
            return False
        if not any(fd == sock.fileno() for fd, _ in events):
            return False
        self._recv_into_buffer(sock)
        return True

    def _recv_into_buffer(self, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            raise self._lost(exc) from exc
        if not chunk:
            raise self._lost("closed by the server")
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += chunk

    def _poller(self, sock: socket.socket, wakeup: int | None) -> select.poll:
        cached = self._pollers.get(wakeup)
        if cached is None:
            cached = select.poll()
            cached.register(sock, POLL_IN)
            if wakeup is not None:
                cached.register(wakeup, select.POLLIN)
            self._pollers[wakeup] = cached
        return cached

    def _parse_replies(self, limit: int) -> list[Reply]:
        """Up to ``limit`` whole replies already in the buffer (consumed from it)."""
        try:
            replies, upto = parse_replies(self._buf, self._pos, limit)
        except MalformedReply as exc:
            raise self._protocol_error(str(exc)) from exc
        if replies:
            self._consumed(upto)
        return replies

    def _parse_reply(self) -> Reply | None:
        replies = self._parse_replies(1)
        return replies[0] if replies else None

    def _consumed(self, upto: int) -> None:
        if upto >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        else:
            self._pos = upto

    def _protocol_error(self, message: str) -> BrokerProtocolError:
        self.close()
        return BrokerProtocolError(f"beanstalkd at {self.address}: {message}")

    def _read_reply(self, deadline: float | None, wakeup: int | None = None) -> Reply | None:
        while True:
            reply = self._parse_reply()
            if reply is not None:
                self._last_reply = time.monotonic()
                self._proven = True
                return reply
            if not self._fill(deadline, wakeup):
                return None

    def _call(
        self, command: bytes, expected: tuple[bytes, ...], body: bytes | None = None
    ) -> Reply:
        """Send one command and return its reply if its word is in ``expected``."""
        with self._lock:
            data = command + b"\r\n" if body is None else b"%s\r\n%s\r\n" % (command, body)
            proven = self._sock is not None and self._proven
            try:
                self._send(data)
                reply = self._read_reply(time.monotonic() + self.command_timeout)
            except BrokerConnectionError:
                if not proven:
                    raise
                # A connection that worked before died while idle (the server restarted, or
                # dropped us): try once more on a fresh one, which restores the tubes.
                self._send(data)
                reply = self._read_reply(time.monotonic() + self.command_timeout)
            if reply is None:
                self.close()
                raise BrokerTimeoutError(
                    f"beanstalkd at {self.address} did not answer {command.split()[0]!r} "
                    f"within {self.command_timeout} s"
                )
            return self._check(command, reply, expected)

    def pipeline(self) -> Pipeline:
        """A batch of commands sent in one write, replies matched in order (see Pipeline)."""
        from kqueue.pipeline import Pipeline

        return Pipeline(self)

    def exchange(self, data: bytes, count: int) -> list[Reply]:
        """Send ``count`` commands, already framed in ``data``, in one write; their replies.

        Every reply must arrive within ``command_timeout`` of the previous one. When the
        connection drops or times out part way, :class:`PipelineBroken` carries the replies
        read so far and the error for the rest. A connection that had worked before and
        fails before any reply is retried once on a fresh one, as single commands are.
        """
        with self._lock:
            proven = self._sock is not None and self._proven
            try:
                return self._exchange_once(data, count)
            except PipelineBroken as broken:
                retry = proven and not broken.replies
                if not retry or not isinstance(broken.error, BrokerConnectionError):
                    raise
            return self._exchange_once(data, count)

    def _exchange_once(self, data: bytes, count: int) -> list[Reply]:
        replies: list[Reply] = []
        deadline: float | None = None  # of the reply being read: command_timeout after the last
        try:
            self._send(data)
            while len(replies) < count:
                # Parse every whole reply already read before waiting for more bytes.
                parsed = self._parse_replies(count - len(replies))
                if parsed:
                    replies += parsed
                    deadline = None
                    continue
                if deadline is None:
                    deadline = time.monotonic() + self.command_timeout
                if not self._fill(deadline, None):
                    self.close()
                    raise BrokerTimeoutError(
                        f"beanstalkd at {self.address} did not answer command "
                        f"{len(replies) + 1} of a pipeline of {count} "
                        f"within {self.command_timeout} s"
                    )
        except BrokerError as exc:
            raise PipelineBroken(exc, replies) from exc
        finally:
            if replies:
                self._last_reply = time.monotonic()
                self._proven = True
        return replies

    def check_reply(self, command: bytes, reply: Reply, expected: tuple[bytes, ...]) -> Reply:
        """``reply`` if its word is in ``expected``; else the translated error is raised."""
        return self._check(command, reply, expected)

    def _check(self, command: bytes, reply: Reply, expected: tuple[bytes, ...]) -> Reply:
        if reply.word in expected:
            return reply
        error = _ERROR_REPLIES.get(reply.word)
        name = command.split(b" ", 1)[0].decode(errors="replace")
        if error is not None:
            raise error(f"beanstalkd at {self.address} answered {reply.word.decode()} to {name}")
        raise self._protocol_error(f"unexpected reply {reply.word!r} to {name}")

    # -- producer commands -----------------------------------------------------------------

    def use(self, tube: str) -> None:
        """Put new jobs into ``tube``."""
        with self._lock:
            self._call(b"use %s" % tube.encode(), (b"USING",))
            self._used = tube

    def put(self, body: bytes, *, priority: int, delay: int, ttr: int) -> int:
        """Put a job into the used tube; its id."""
        reply = self._call(b"put %d %d %d %d" % (priority, delay, ttr, len(body)), _PUT_OK, body)
        if reply.word == b"BURIED":
            raise BrokerServerError(
                f"beanstalkd at {self.address} ran out of memory and buried job {reply.args[0]!r}"
            )
        return int(reply.args[0])

    # -- worker commands -------------------------------------------------------------------

    def watch(self, tube: str) -> None:
        """Add ``tube`` to the watch list."""
        with self._lock:
            self._call(b"watch %s" % tube.encode(), (b"WATCHING",))
            if tube not in self._watched:
                self._watched.append(tube)

    def ignore(self, tube: str) -> bool:
        """Remove ``tube`` from the watch list; False if it is the last one (NOT_IGNORED)."""
        with self._lock:
            reply = self._call(b"ignore %s" % tube.encode(), (b"WATCHING", b"NOT_IGNORED"))
            if reply.word == b"NOT_IGNORED":
                return False
            if tube in self._watched:
                self._watched.remove(tube)
            return True

    @property
    def watched(self) -> list[str]:
        """The tubes this connection watches (as it will restore them)."""
        return list(self._watched)

    def reserve(self, timeout: float | None, *, wakeup: int | None = None) -> ReservedJob | None:
        """Wait up to ``timeout`` seconds (None: forever) for a job of a watched tube.

        None when the time ran out or ``wakeup`` became readable. A wait that ends before the
        server answered closes the connection, so a job reserved in the meantime is released
        at once by the server rather than held. Raises :class:`DeadlineSoon`.
        """
        with self._lock:
            if timeout is None:
                self._send(b"reserve\r\n")
                deadline = None
            elif timeout == int(timeout):
                # A whole number of seconds: the server times out itself; no abandon needed.
                self._send(b"reserve-with-timeout %d\r\n" % timeout)
                deadline = time.monotonic() + timeout + self.command_timeout
            else:
                self._send(b"reserve-with-timeout %d\r\n" % math.ceil(timeout))
                deadline = time.monotonic() + timeout
            reply = self._read_reply(deadline, wakeup)
            if reply is None:
                self.close()
                return None
            reply = self._check(b"reserve", reply, _RESERVE_OK)
            if reply.word == b"TIMED_OUT":
                return None
            if reply.word == b"DEADLINE_SOON":
                raise DeadlineSoon(f"a job reserved on {self.address} is near its TTR")
            assert reply.body is not None
            return ReservedJob(int(reply.args[0]), reply.body)

    def reserve_job(self, job_id: int) -> ReservedJob | None:
        """Reserve a ready, delayed or buried job by id (any tube); None if not found."""
        reply = self._call(b"reserve-job %d" % job_id, (b"RESERVED", b"NOT_FOUND"))
        if reply.body is None:
            return None
        return ReservedJob(int(reply.args[0]), reply.body)

    def delete(self, job_id: int) -> bool:
        """Delete a job; False if not found (or reserved by another connection)."""
        return self._call(b"delete %d" % job_id, (b"DELETED", b"NOT_FOUND")).word == b"DELETED"

    def release(self, job_id: int, *, priority: int, delay: int) -> bool:
        """Release a job reserved by this connection; False if not found."""
        reply = self._call(
            b"release %d %d %d" % (job_id, priority, delay), (b"RELEASED", b"BURIED", b"NOT_FOUND")
        )
        return reply.word != b"NOT_FOUND"

    def bury(self, job_id: int, *, priority: int) -> bool:
        """Bury a job reserved by this connection; False if not found."""
        reply = self._call(b"bury %d %d" % (job_id, priority), (b"BURIED", b"NOT_FOUND"))
        return reply.word == b"BURIED"

    def touch(self, job_id: int) -> bool:
        """Give a reserved job its full TTR again; False if not found."""
        return self._call(b"touch %d" % job_id, (b"TOUCHED", b"NOT_FOUND")).word == b"TOUCHED"

    # -- inspection and admin --------------------------------------------------------------

    def stats(self) -> Stats:
        """Server statistics."""
        with self._lock:
            stats = parse_yaml_dict(self._body_of(self._call(b"stats", (b"OK",))))
            self._server_stats = stats
            return stats

    def server_stats(self) -> Stats:
        """Server statistics as of the current connection (fetched once per connect).

        Good for what never changes in one server lifetime: ``id`` and ``max-job-size``.
        """
        with self._lock:
            self._ensure_open()
            cached = self._server_stats
            return cached if cached is not None else self.stats()

    def server_id(self) -> str:
        """The random ``id`` of the server process behind this connection."""
        return str(self.server_stats()["id"])

    def _body_of(self, reply: Reply) -> bytes:
        if reply.body is None:
            raise self._protocol_error(f"reply {reply.word!r} has no body")
        return reply.body


_PUT_OK = (b"INSERTED", b"BURIED")
_RESERVE_OK = (b"RESERVED", b"TIMED_OUT", b"DEADLINE_SOON")
