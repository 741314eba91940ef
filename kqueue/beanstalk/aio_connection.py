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
import contextlib
import socket
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

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


class AsyncBeanstalkConnection:
    """One beanstalkd connection for asyncio; many coroutines may share it (pipelined)."""

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
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiters: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self._connecting = asyncio.Lock()
        self._used = "default"
        self._watched: list[str] = ["default"]
        self._server_stats: ServerStats | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the server, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while a socket is open."""
        return self._writer is not None

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
        state = "open" if self._writer else "closed"
        return f"<AsyncBeanstalkConnection {self.address} {state}>"

    # -- connection life -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket (unless open) and restore the used and watched tubes."""
        async with self._connecting:
            if self._writer is None:
                await self._open()

    async def _open(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(self._open_streams(), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise BrokerConnectionError(
                f"cannot connect to beanstalkd at {self.address}: {exc or 'timed out'}"
            ) from exc
        self._writer = writer
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(reader))
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

    async def _open_streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.socket_factory is not None:
            sock: socket.socket = self.socket_factory()
            return await asyncio.open_connection(sock=sock, limit=_READ_SIZE)
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=_READ_SIZE)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    def close(self) -> None:
        """Close the socket (reserved jobs go back to ready on the server); every command in
        flight fails."""
        self._lost(BrokerConnectionError(f"connection to beanstalkd at {self.address} closed"))

    async def aclose(self) -> None:
        """Close, and wait for the reader task to end."""
        task = self._reader_task
        self.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _lost(self, error: KQueueError) -> None:
        writer, self._writer = self._writer, None
        task, self._reader_task = self._reader_task, None
        self._server_stats = None
        if writer is not None:
            writer.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        waiters, self._waiters = self._waiters, collections.deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    raise ConnectionResetError("closed by the server")
                buf += chunk
                replies, upto = parse_replies(buf, 0, len(self._waiters) or 1)
                del buf[:upto]
                for reply in replies:
                    if not self._waiters:
                        raise MalformedReply(f"a reply nobody asked for: {reply.word!r}")
                    waiter = self._waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(reply)
        except MalformedReply as exc:
            self._lost(BrokerProtocolError(f"beanstalkd at {self.address}: {exc}"))
        except OSError as exc:
            lost = f"connection to beanstalkd at {self.address} lost: {exc}"
            self._lost(BrokerConnectionError(lost))

    # -- commands --------------------------------------------------------------------------

    def _write(self, calls: Sequence[Call[Any]]) -> list[asyncio.Future[Reply]]:
        """Write ``calls`` in one write; their reply futures. No await in here: commands of
        concurrent coroutines never interleave, and tube state follows the write order."""
        writer = self._writer
        if writer is None:
            raise BrokerConnectionError(f"connection to beanstalkd at {self.address} lost")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in calls]
        for call in calls:
            self._track_tube(call)
        writer.write(b"".join(call.frame for call in calls))
        self._waiters.extend(futures)
        return futures

    def _track_tube(self, call: Call[Any]) -> None:
        tube, command = call.tube, call.command
        if tube is None:
            return
        if command is cmd.USE:
            self._used = tube
        elif command is cmd.WATCH and tube not in self._watched:
            self._watched.append(tube)
        elif command is cmd.IGNORE and tube in self._watched and len(self._watched) > 1:
            self._watched.remove(tube)

    async def _reply(self, future: asyncio.Future[Reply], timeout: float, name: bytes) -> Reply:
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            self._lost(BrokerTimeoutError(f"beanstalkd at {self.address}: connection timed out"))
            raise BrokerTimeoutError(
                f"beanstalkd at {self.address} did not answer {name.decode()!r} within "
                f"{timeout:g} s"
            ) from None
        except asyncio.CancelledError:
            # The reply would be read by nobody: the connection is out of step.
            self._lost(BrokerConnectionError(f"a command on {self.address} was cancelled"))
            raise

    def result(self, command: Command[T], reply: Reply) -> T:
        """``command``'s value from ``reply``, or the error the reply means, raised."""
        try:
            return result_of(command, reply, self.address)
        except UnexpectedReply:
            self.close()
            raise

    async def run(self, call: Call[T]) -> T:
        """Send one command and return its converted reply (errors raised translated)."""
        await self.connect()
        (future,) = self._write([call])
        reply = await self._reply(future, self.command_timeout, call.command.name)
        return self.result(call.command, reply)

    async def pipeline(self, calls: Sequence[Call[Any]]) -> list[Pending[Any]]:
        """Send ``calls`` in one write; a settled :class:`Pending` for each.

        An error reply fails only its own command. When the connection drops part way, the
        commands answered before keep their results and the rest carry the connection's
        error, which is also raised (after every Pending is settled)."""
        sent = await self.exchange(calls)
        if sent.error is not None:
            raise sent.error
        return sent.pending

    async def exchange(self, calls: Sequence[Call[Any]], *, tube: str | None = None) -> Exchange:
        """:meth:`pipeline`, into ``tube`` if given (a ``use`` goes first when the connection
        uses another, decided as the burst is written), never raising for a lost connection:
        the :class:`Exchange` carries the error, and the id of the server that got the burst
        (read when its connection opened: never a successor's)."""
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
                reply = await self._reply(future, self.command_timeout, slot.call.command.name)
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
        (future,) = self._write([Call(cmd.RESERVE, b"reserve-with-timeout %d\r\n" % timeout)])
        reply = await self._reply(future, timeout + self.command_timeout, b"reserve")
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
