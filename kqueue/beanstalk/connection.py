"""The beanstalkd connection: one socket, replies matched in order, errors translated.

Commands come from the one table in :mod:`kqueue.beanstalk.commands`: :meth:`run` sends one
and returns its converted reply; :class:`~kqueue.beanstalk.pipeline.Pipeline` queues many and
sends them in one write. The named methods (``put``, ``reserve``, ``peek`` ...) are one-line
shortcuts for :meth:`run`.

kqueue speaks the protocol itself rather than through greenstalk because a worker must wait
for a job with a sub-second deadline and wake at once on ``stop()``: the reply wait is a
``poll`` on the socket and a wake-up descriptor, with a timeout on every read. Every socket
error becomes :class:`~kqueue.errors.BrokerConnectionError` naming the address.

A connection remembers the tube it uses and the tubes it watches and restores them when it
reconnects, so callers survive a broker restart by simply issuing the next command.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.commands import Call, Command, DeadlineSoon, UnexpectedReply, result_of
from kqueue.beanstalk.wire import (
    JobStats,
    MalformedReply,
    PipelineBroken,
    Reply,
    ReservedJob,
    ServerStats,
    TubeStats,
    parse_replies,
)
from kqueue.errors import (
    BrokerConnectionError,
    BrokerError,
    BrokerProtocolError,
    BrokerTimeoutError,
)

__all__ = ["BeanstalkConnection", "DeadlineSoon", "SocketFactory", "Wakeup"]

T = TypeVar("T")

SocketFactory = Callable[[], socket.socket]
"""Opens a connected socket to a beanstalkd (``KQueue(connect=...)``): a unix socket, an
in-process fake's, a tunnel. Errors it raises (OSError) are reported like failed connects."""

POLL_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_RECV_SIZE = 256 * 1024
# A connection idle this long is checked for a server-side close before it is used again.
_IDLE_CHECK_AFTER = 0.5


def readable(sock: socket.socket, timeout: float) -> bool:
    """True if ``sock`` has input (or EOF) within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(sock, POLL_IN)
    return bool(poller.poll(max(0, timeout) * 1000))


class Wakeup:
    """A pipe that interrupts a waiting reserve from another thread or a signal handler.

    Closing it frees both descriptors; the next :attr:`fd` opens a new pipe (a closed
    queue may be used again). Until then :meth:`set` and :meth:`clear` do nothing: a closed
    descriptor number may already belong to someone else.
    """

    def __init__(self) -> None:
        self._pipe: tuple[int, int] | None = None

    @property
    def fd(self) -> int:
        """The descriptor to poll (the pipe is opened if it is not)."""
        return self.open()

    def open(self) -> int:
        """Open the pipe unless it is open; the descriptor to poll."""
        if self._pipe is None:
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            self._pipe = (read, write)
        return self._pipe[0]

    def set(self) -> None:
        """Wake the waiter (safe from signal handlers)."""
        pipe = self._pipe
        if pipe is not None:
            with contextlib.suppress(BlockingIOError):  # already full of wake-ups
                os.write(pipe[1], b"x")

    def clear(self) -> None:
        """Forget pending wake-ups."""
        pipe = self._pipe
        if pipe is not None:
            with contextlib.suppress(BlockingIOError):
                while os.read(pipe[0], 4096):
                    pass

    def close(self) -> None:
        """Close both ends."""
        pipe, self._pipe = self._pipe, None
        for fd in pipe or ():
            with contextlib.suppress(OSError):
                os.close(fd)


class BeanstalkConnection:
    """One beanstalkd connection. Thread-safe: one command at a time."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11300,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        socket_factory: SocketFactory | None = None,
    ) -> None:
        self.host = host
        self.socket_factory = socket_factory
        self.port = port
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._pos = 0  # parsed up to here; compacted once per recv, not once per reply
        self._lock = threading.RLock()
        self._used = "default"
        # An ordered set (a dict's keys): a worker watches one tube per job type, and a
        # membership test per watch must not walk a list of a thousand tubes.
        self._watched: dict[str, None] = {"default": None}
        self._server_stats: ServerStats | None = None
        self._pollers: dict[int | None, select.poll] = {}
        self._last_reply = 0.0
        self._proven = False
        self._reserving = False  # a reserve sent by send_reserve, its reply not yet read

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
                sock = self._open_socket()
            except OSError as exc:
                raise BrokerConnectionError(
                    f"cannot connect to beanstalkd at {self.address}: {exc}"
                ) from exc
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            self._sock = sock
            self._proven = False
            self._server_stats = None
            self._restore_tubes()
            # Which server process this connection talks to, asked now: an id asked later
            # (after a reconnect elsewhere) could name another process than the one that
            # got this connection's commands.
            self.stats()

    def _open_socket(self) -> socket.socket:
        if self.socket_factory is not None:
            return self.socket_factory()
        return socket.create_connection((self.host, self.port), self.connect_timeout)

    def _restore_tubes(self) -> None:
        """The used and watched tubes again, in one pipelined burst however many there are."""
        calls: list[Call[Any]] = [cmd.use(self._used)] if self._used != "default" else []
        calls += [cmd.watch(tube) for tube in self._watched if tube != "default"]
        if "default" not in self._watched:
            calls.append(cmd.ignore("default"))
        if not calls:
            return
        try:
            replies = self._exchange_once(b"".join(call.frame for call in calls), len(calls))
        except PipelineBroken as broken:
            raise broken.error from None
        for call, reply in zip(calls, replies, strict=True):
            self.convert(call.command, reply)  # the tube state is what it was: nothing to track

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
                    self._reserving = False

    def _ensure_open(self) -> socket.socket:
        if self._reserving:
            # Another command must not read the pending reserve's reply as its own: the
            # reserve is abandoned, and closing hands any job it took back to the server.
            self.close()
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

    def _roundtrip(self, frame: bytes, name: bytes) -> Reply:
        """Send one framed command and read its reply (any word)."""
        with self._lock:
            proven = self._sock is not None and self._proven
            try:
                self._send(frame)
                reply = self._read_reply(time.monotonic() + self.command_timeout)
            except BrokerConnectionError:
                if not proven:
                    raise
                # A connection that worked before died while idle (the server restarted, or
                # dropped us): try once more on a fresh one, which restores the tubes.
                self._send(frame)
                reply = self._read_reply(time.monotonic() + self.command_timeout)
            if reply is None:
                self.close()
                raise BrokerTimeoutError(
                    f"beanstalkd at {self.address} did not answer {name.decode()!r} "
                    f"within {self.command_timeout} s"
                )
            return reply

    def run(self, call: Call[T]) -> T:
        """Send one command and return its converted reply (errors raised translated)."""
        with self._lock:
            return self.settle(call, self._roundtrip(call.frame, call.command.name))

    def settle(self, call: Call[T], reply: Reply) -> T:
        """The result of ``call`` from its ``reply``: checked, converted, tube state kept."""
        result = self.convert(call.command, reply)
        if call.tube is not None:
            self._track_tube(call, result)
        return result

    def convert(self, command: Command[T], reply: Reply) -> T:
        """``command``'s value from ``reply``, or the error the reply means, raised."""
        try:
            return result_of(command, reply, self.address)
        except UnexpectedReply:
            self.close()  # out of step: nothing read after it could be trusted
            raise

    def _track_tube(self, call: Call[T], result: object) -> None:
        tube = call.tube
        if call.command is cmd.USE:
            self._used = tube or "default"
        elif call.command is cmd.WATCH:
            if tube is not None:
                self._watched[tube] = None
        elif call.command is cmd.IGNORE and result and tube is not None:
            self._watched.pop(tube, None)

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
        try:
            self._send(data)
        except BrokerError as exc:
            raise PipelineBroken(exc, []) from exc
        return self._collect(count)

    def _collect(self, count: int) -> list[Reply]:
        """``count`` replies, each within ``command_timeout`` of the one before."""
        replies: list[Reply] = []
        deadline: float | None = None  # of the reply being read: command_timeout after the last
        try:
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

    @contextlib.contextmanager
    def overlapped(self, data: bytes, count: int) -> Iterator[Callable[[], list[Reply]]]:
        """Send ``count`` framed commands now and read their replies later, by calling what
        this yields, so that the caller's other work (a store read) overlaps the round trip.

        The connection stays locked meanwhile. If the replies are never read, the connection
        is closed on exit (it could not be used again). Raises the connection's error.
        """
        with self._lock:
            replies: list[Reply] | None = None

            def collect() -> list[Reply]:
                nonlocal replies
                if replies is None:
                    try:
                        replies = self._collect(count)
                    except PipelineBroken as broken:
                        raise broken.error from broken.error.__cause__
                return replies

            self._send(data)
            try:
                yield collect
            finally:
                if replies is None:
                    self.close()

    # -- the commands, one line each over the table ----------------------------------------

    def use(self, tube: str) -> None:
        """Put new jobs into ``tube``."""
        self.run(cmd.use(tube))

    @property
    def used(self) -> str:
        """The tube new jobs go into (as it will be restored on reconnect)."""
        return self._used

    def put(self, body: bytes, *, priority: int, delay: int, ttr: int) -> int:
        """Put a job into the used tube; its id."""
        return self.run(cmd.put(body, priority=priority, delay=delay, ttr=ttr))

    def watch(self, tube: str) -> None:
        """Add ``tube`` to the watch list."""
        self.run(cmd.watch(tube))

    def ignore(self, tube: str) -> bool:
        """Remove ``tube`` from the watch list; False if it is the last one (NOT_IGNORED)."""
        return self.run(cmd.ignore(tube))

    @property
    def watched(self) -> list[str]:
        """The tubes this connection watches (as it will restore them)."""
        return list(self._watched)

    @property
    def watch_count(self) -> int:
        """How many tubes this connection watches (without copying their names)."""
        return len(self._watched)

    def reserve_job(self, job_id: int) -> ReservedJob | None:
        """Reserve a ready, delayed or buried job by id (any tube); None if not found."""
        return self.run(cmd.reserve_job(job_id))

    def delete(self, job_id: int) -> bool:
        """Delete a job; False if not found (or reserved by another connection)."""
        return self.run(cmd.delete(job_id))

    def release(self, job_id: int, *, priority: int, delay: int) -> bool:
        """Release a job reserved by this connection; False if not found."""
        return self.run(cmd.release(job_id, priority=priority, delay=delay))

    def bury(self, job_id: int, *, priority: int) -> bool:
        """Bury a job reserved by this connection; False if not found."""
        return self.run(cmd.bury(job_id, priority=priority))

    def touch(self, job_id: int) -> bool:
        """Give a reserved job its full TTR again; False if not found."""
        return self.run(cmd.touch(job_id))

    def peek(self, job_id: int) -> ReservedJob | None:
        """A job by id in any state, or None."""
        return self.run(cmd.peek(job_id))

    def peek_ready(self) -> ReservedJob | None:
        """The next ready job of the used tube, or None."""
        return self.run(cmd.peek_ready())

    def peek_delayed(self) -> ReservedJob | None:
        """The delayed job of the used tube with the nearest deadline, or None."""
        return self.run(cmd.peek_delayed())

    def peek_buried(self) -> ReservedJob | None:
        """The oldest buried job of the used tube, or None."""
        return self.run(cmd.peek_buried())

    def kick(self, bound: int) -> int:
        """Kick up to ``bound`` buried (else delayed) jobs of the used tube; how many."""
        return self.run(cmd.kick(bound))

    def kick_job(self, job_id: int) -> bool:
        """Kick one buried or delayed job; False if not found."""
        return self.run(cmd.kick_job(job_id))

    def stats_job(self, job_id: int) -> JobStats | None:
        """Statistics of one job, or None if not found."""
        return self.run(cmd.stats_job(job_id))

    def stats_tube(self, tube: str) -> TubeStats | None:
        """Statistics of one tube, or None if it does not exist."""
        return self.run(cmd.stats_tube(tube))

    def list_tubes(self) -> list[str]:
        """Every tube that exists on the server."""
        return self.run(cmd.list_tubes())

    def pause_tube(self, tube: str, delay: int) -> bool:
        """Hold back reserves from ``tube`` for ``delay`` seconds (0 lifts it); False if none."""
        return self.run(cmd.pause_tube(tube, delay))

    def stats(self) -> ServerStats:
        """Server statistics (remembered for :meth:`server_stats`)."""
        with self._lock:
            stats = self.run(cmd.stats())
            self._server_stats = stats
            return stats

    def server_stats(self) -> ServerStats:
        """Server statistics as of the current connection (fetched when it connected).

        Good for what never changes in one server lifetime: ``id`` and ``max-job-size``.
        """
        with self._lock:
            self._ensure_open()
            cached = self._server_stats
            return cached if cached is not None else self.stats()

    def server_id(self) -> str:
        """The random ``id`` of the server process behind this connection."""
        return self.server_stats()["id"]

    def known_server_id(self) -> str | None:
        """The server's ``id`` if this connection is open and already knows it; never sends
        anything (safe while a reserve is outstanding)."""
        stats = self._server_stats
        return stats["id"] if stats is not None and self.connected else None

    # -- a reserve left outstanding (a worker waiting on several servers at once) ---------

    def send_reserve(self, timeout: int) -> None:
        """Send ``reserve-with-timeout`` and return at once; :meth:`reserved_reply` reads
        the reply later. Any other command sent meanwhile abandons the reserve (closing the
        connection, which hands a job it took back to the server)."""
        with self._lock:
            self._send(b"reserve-with-timeout %d\r\n" % timeout)
            self._reserving = True

    @property
    def reserving(self) -> bool:
        """True while a reserve sent by :meth:`send_reserve` has not been answered."""
        return self._reserving

    def fileno(self) -> int | None:
        """The socket's descriptor (to wait on several connections at once), or None."""
        sock = self._sock
        return None if sock is None else sock.fileno()

    def reserved_reply(self) -> tuple[bool, ReservedJob | None]:
        """Without blocking: (True, the job or None when it timed out) once the reply to
        :meth:`send_reserve` is in, (False, None) while it is not. Raises the connection's
        error, or :class:`DeadlineSoon`."""
        with self._lock:
            if not self._reserving:
                return True, None
            reply = self._read_reply(time.monotonic())
            if reply is None:
                return False, None
            self._reserving = False
            return True, self.convert(cmd.RESERVE, reply)

    def reserve(self, timeout: float | None, *, wakeup: int | None = None) -> ReservedJob | None:
        """Wait up to ``timeout`` seconds (None: forever) for a job of a watched tube.

        None when the time ran out or ``wakeup`` became readable. A wait that ends before the
        server answered closes the connection, so a job reserved in the meantime is released
        at once by the server rather than held. Raises :class:`DeadlineSoon`.
        """
        with self._lock:
            server_deadline = None  # when the server must have answered TIMED_OUT
            if timeout is None:
                self._send(b"reserve\r\n")
                deadline = None
            elif timeout == int(timeout):
                # A whole number of seconds: the server times out itself; no abandon needed.
                self._send(b"reserve-with-timeout %d\r\n" % timeout)
                deadline = server_deadline = time.monotonic() + timeout + self.command_timeout
            else:
                self._send(b"reserve-with-timeout %d\r\n" % math.ceil(timeout))
                deadline = time.monotonic() + timeout
            reply = self._read_reply(deadline, wakeup)
            if reply is None:
                self.close()
                if server_deadline is not None and time.monotonic() >= server_deadline:
                    raise BrokerTimeoutError(
                        f"beanstalkd at {self.address} did not time out a reserve of "
                        f"{timeout:g} s within {self.command_timeout} s more: frozen or cut off"
                    )
                return None
            return self.convert(cmd.RESERVE, reply)
