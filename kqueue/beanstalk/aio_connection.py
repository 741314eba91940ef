"""The asyncio beanstalkd connection: the same command table and reply parser as the sync one.

Commands come from :mod:`kqueue.beanstalk.commands` and replies are cut by
:func:`~kqueue.beanstalk.wire.parse_replies` and checked by
:func:`~kqueue.beanstalk.commands.result_of`: only the I/O is asyncio's. beanstalkd answers a
connection's commands in order, so every command is written at once and its reply awaited
from a queue of futures that one reader task settles: coroutines sharing a connection
pipeline their commands by themselves, and :meth:`AsyncBeanstalkConnection.pipeline` sends a
burst in one write (the sync :class:`~kqueue.beanstalk.pipeline.Pipeline`'s shape).

The used tube and the watched tubes are tracked when a command is written (a put written
after a ``use`` goes to that tube, whatever answers first) and restored on reconnect. A lost
connection fails every command in flight with :class:`~kqueue.errors.BrokerConnectionError`;
the next command connects again.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from kqueue import inflight
from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.commands import Call, Command, Pending, UnexpectedReply, result_of
from kqueue.beanstalk.wire import MalformedReply, Reply, ReservedJob, ServerStats, parse_replies
from kqueue.errors import (
    BrokerConnectionError,
    BrokerError,
    BrokerProtocolError,
    BrokerTimeoutError,
    KQueueError,
)

__all__ = ["AsyncBeanstalkConnection", "Exchange"]

T = TypeVar("T")

_READ_SIZE = 256 * 1024


class Exchange(NamedTuple):
    """A burst's outcome: a settled Pending per command, the id of the server that got it
    ("" if unknown), and the connection's error when it broke part way (else None)."""

    pending: list[Pending[Any]]
    server_id: str
    error: BrokerError | None


def _failed(call: Call[T], error: KQueueError) -> Pending[T]:
    pending = Pending(call)
    pending.fail(error)
    return pending


class _Replies(asyncio.Protocol):
    """Bytes in, replies out to the connection's waiters, in order (on the loop's own
    callback: no reader task to wake)."""

    def __init__(self, conn: AsyncBeanstalkConnection) -> None:
        self.conn = conn
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            replies, upto = parse_replies(self.buf, 0, len(self.buf))
        except MalformedReply as exc:
            self.conn.broken(self, BrokerProtocolError(f"beanstalkd at {self.conn.address}: {exc}"))
            return
        del self.buf[:upto]
        if replies:
            self.conn.deliver(self, replies)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = exc or "closed by the server"
        lost = f"connection to beanstalkd at {self.conn.address} lost: {reason}"
        self.conn.broken(self, BrokerConnectionError(lost))


class AsyncBeanstalkConnection:
    """One beanstalkd connection for asyncio; many coroutines may share it (pipelined).

    Every reply must come within ``command_timeout`` of the one before (or of its command,
    when nothing else is in flight), else the connection is closed and the commands in
    flight fail with :class:`~kqueue.errors.BrokerTimeoutError`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 11300,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        socket_factory: Any = None,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.socket_factory = socket_factory
        self._transport: asyncio.Transport | None = None
        self._protocol: _Replies | None = None
        self._waiters: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self._connecting = asyncio.Lock()
        self._used = "default"
        self._watched: dict[str, None] = {"default": None}  # an ordered set (see the sync one)
        self._server_stats: ServerStats | None = None
        self._deadline = 0.0  # of the oldest reply in flight (loop time)
        self._patient_until = 0.0  # a blocking reserve in flight may be silent until then
        self.generation = 0
        """Counts the sockets opened: a job reserved on one is settled on that one only."""
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the server, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while a socket is open."""
        return self._transport is not None

    @property
    def used(self) -> str:
        """The tube new jobs go into."""
        return self._used

    @property
    def watched(self) -> list[str]:
        """The tubes this connection watches."""
        return list(self._watched)

    @property
    def in_flight(self) -> int:
        """Commands written whose replies have not come yet."""
        return len(self._waiters)

    def __repr__(self) -> str:
        state = "open" if self._transport else "closed"
        return f"<AsyncBeanstalkConnection {self.address} {state}>"

    # -- connection life -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket (unless open) and restore the used and watched tubes.

        The connection counts as open once that is done and the server's stats are read
        (``_server_stats`` set): a command written before would go out untracked."""
        async with self._connecting:
            if self._server_stats is None:
                self._lost(BrokerConnectionError(f"reconnecting to {self.address}"))
                await self._open()

    async def _open(self) -> None:
        protocol = _Replies(self)
        try:
            transport = await asyncio.wait_for(self._open_transport(protocol), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise BrokerConnectionError(
                f"cannot connect to beanstalkd at {self.address}: {exc or 'timed out'}"
            ) from exc
        self._transport, self._protocol = transport, protocol
        self.generation += 1
        calls: list[Call[Any]] = []
        if self._used != "default":
            calls.append(cmd.use(self._used))
        calls += [cmd.watch(tube) for tube in self._watched if tube != "default"]
        if "default" not in self._watched:
            calls.append(cmd.ignore("default"))
        calls.append(cmd.stats())
        sent = await self._pipeline(calls, None)
        if sent.error is not None:
            raise sent.error
        # Which server process this connection talks to, asked now (see the sync one).
        self._server_stats = sent.pending[-1].result()

    async def _open_transport(self, protocol: _Replies) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        if self.socket_factory is not None:
            sock: socket.socket = self.socket_factory()
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
        else:
            transport, _ = await loop.create_connection(lambda: protocol, self.host, self.port)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return transport

    def close(self) -> None:
        """Close the socket (reserved jobs go back to ready on the server); every command in
        flight fails."""
        self._lost(BrokerConnectionError(f"connection to beanstalkd at {self.address} closed"))

    async def aclose(self) -> None:
        """Close (kept awaitable for symmetry with the stores' clients)."""
        self.close()

    def _lost(self, error: KQueueError) -> None:
        transport, self._transport, self._protocol = self._transport, None, None
        self._server_stats = None
        watchdog, self._watchdog = self._watchdog, None
        waiters, self._waiters = self._waiters, collections.deque()
        inflight.abort(transport, watchdog, waiters, error)

    def broken(self, protocol: _Replies, error: KQueueError) -> None:
        """The transport of ``protocol`` failed (if it is still this connection's)."""
        if protocol is self._protocol:
            self._lost(error)

    def deliver(self, protocol: _Replies, replies: list[Reply]) -> None:
        """Hand ``replies`` to the oldest waiters (a cancelled waiter's reply is dropped: the
        order stays right)."""
        if protocol is not self._protocol:
            return
        asked = len(self._waiters)
        if not inflight.deliver(self._waiters, replies):
            self._lost(
                BrokerProtocolError(
                    f"beanstalkd at {self.address}: a reply nobody asked for: "
                    f"{replies[asked].word!r}"
                )
            )
            return
        now = asyncio.get_running_loop().time()
        self._deadline = max(now + self.command_timeout, self._patient_until)

    def _check_deadline(self) -> None:
        self._watchdog = None
        self._watchdog = inflight.watch_deadline(
            self._waiters, self._deadline, self._check_deadline, self._timed_out
        )

    def _timed_out(self) -> None:
        self._lost(
            BrokerTimeoutError(
                f"beanstalkd at {self.address} did not answer within {self.command_timeout:g} s"
            )
        )

    # -- commands --------------------------------------------------------------------------

    def _write(
        self, calls: Sequence[Call[Any]], patience: float = 0.0
    ) -> list[asyncio.Future[Reply]]:
        """Write ``calls`` in one write; their reply futures. No await in here: commands of
        concurrent coroutines never interleave, and tube state follows the write order."""
        transport = self._transport
        if transport is None:
            raise BrokerConnectionError(f"connection to beanstalkd at {self.address} lost")
        loop = asyncio.get_running_loop()
        now = loop.time()
        if patience:
            self._patient_until = now + patience
        if not self._waiters:
            self._deadline = max(now + self.command_timeout, self._patient_until)
        futures = [loop.create_future() for _ in calls]
        for call in calls:
            self._track_tube(call)
        transport.write(b"".join(call.frame for call in calls))
        self._waiters.extend(futures)
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._deadline, self._check_deadline)
        return futures

    def _track_tube(self, call: Call[Any]) -> None:
        tube, command = call.tube, call.command
        if tube is None:
            return
        if command is cmd.USE:
            self._used = tube
        elif command is cmd.WATCH:
            self._watched[tube] = None
        elif command is cmd.IGNORE and tube in self._watched and len(self._watched) > 1:
            del self._watched[tube]

    def result(self, command: Command[T], reply: Reply) -> T:
        """``command``'s value from ``reply``, or the error the reply means, raised."""
        try:
            return result_of(command, reply, self.address)
        except UnexpectedReply:
            self.close()
            raise

    async def run(self, call: Call[T], *, held: int | None = None) -> T:
        """Send one command and return its converted reply (errors raised translated).

        ``held``: the :attr:`generation` of the socket that reserved the job the command is
        about; when that socket is gone the command fails rather than reach a new one (whose
        server may give the same id to another job)."""
        self.check_held(held)
        if self._server_stats is None:
            await self.connect()
        (future,) = self._write([call])  # the watchdog fails it if the server takes too long
        reply = await future
        return self.result(call.command, reply)

    def check_held(self, held: int | None) -> None:
        """BrokerConnectionError if the socket of generation ``held`` is gone."""
        if held is not None and (held != self.generation or self._transport is None):
            raise BrokerConnectionError(
                f"the connection to beanstalkd at {self.address} that reserved the job was "
                "lost (the server released the job)"
            )

    async def pipeline(
        self, calls: Sequence[Call[Any]], *, held: int | None = None
    ) -> list[Pending[Any]]:
        """Send ``calls`` in one write; a settled :class:`Pending` for each (``held`` as for
        :meth:`run`).

        An error reply fails only its own command. When the connection drops part way, the
        commands answered before keep their results and the rest carry the connection's
        error, which is also raised (after every Pending is settled)."""
        self.check_held(held)
        sent = await self.exchange(calls)
        if sent.error is not None:
            raise sent.error
        return sent.pending

    async def exchange(self, calls: Sequence[Call[Any]], *, tube: str | None = None) -> Exchange:
        """:meth:`pipeline`, into ``tube`` if given (a ``use`` goes first when the connection
        uses another, decided as the burst is written), never raising for a lost connection:
        the :class:`Exchange` carries the error, and the id of the server that got the burst
        (read when its connection opened: never a successor's)."""
        if self._server_stats is None:
            try:
                await self.connect()
            except BrokerError as exc:
                return Exchange([_failed(call, exc) for call in calls], "", exc)
        return await self._pipeline(calls, tube)

    async def _pipeline(self, calls: Sequence[Call[Any]], tube: str | None) -> Exchange:
        skip = 0
        if tube is not None and tube != self._used:
            calls, skip = [cmd.use(tube), *calls], 1
        stats = self._server_stats
        try:
            futures = self._write(calls)
        except BrokerError as exc:
            return Exchange([_failed(call, exc) for call in calls[skip:]], "", exc)
        pending = [Pending(call) for call in calls]
        broken = await self._settle_all(pending, futures)
        return Exchange(pending[skip:], "" if stats is None else stats["id"], broken)

    async def _settle_all(
        self, pending: list[Pending[Any]], futures: list[asyncio.Future[Reply]]
    ) -> BrokerError | None:
        broken: BrokerError | None = None
        for slot, future in zip(pending, futures, strict=True):
            if broken is not None:
                slot.fail(broken)
                continue
            try:
                reply = await future
            except BrokerError as exc:
                broken = exc
                slot.fail(exc)
                continue
            try:
                slot.set(self.result(slot.call.command, reply))
            except KQueueError as exc:
                slot.fail(exc)
        return broken

    async def reserve(self, timeout: int) -> ReservedJob | None:
        """Wait up to ``timeout`` whole seconds for a job of a watched tube; None if none came.

        Cancelling the wait closes the connection (a job reserved meanwhile goes back to
        ready at once). Raises :class:`~kqueue.beanstalk.commands.DeadlineSoon`."""
        await self.connect()
        call = Call(cmd.RESERVE, b"reserve-with-timeout %d\r\n" % timeout)
        (future,) = self._write([call], patience=timeout + self.command_timeout)
        try:
            reply = await future
        except asyncio.CancelledError:
            self.close()  # a job reserved from now on would be held by nobody
            raise
        return self.result(cmd.RESERVE, reply)

    async def server_stats(self) -> ServerStats:
        """Server statistics as of the current connection (fetched when it connected)."""
        await self.connect()
        cached = self._server_stats
        if cached is not None:
            return cached
        stats = await self.run(cmd.stats())
        self._server_stats = stats
        return stats

    async def server_id(self) -> str:
        """The random ``id`` of the server process behind this connection."""
        return (await self.server_stats())["id"]
