"""A lean asyncio Redis connection for the store's script calls: commands packed and replies
cut by hiredis, on the loop's own callback.

redis-py's asyncio connection costs about twice the CPU of its sync one per command (a
packing pass per argument, a ``wait_for`` task per write, a stream reader per reply:
measured in docs/performance.md), more than the asyncio producer can afford on its three
round trips per add. This connection does only what the store's script calls need:
commands from many coroutines pipelined on one socket, replies handed to their waiters in
order (a cancelled waiter's reply is dropped, so the order stays right), one watchdog timer
for the replies in flight. Errors are redis-py's own classes, so the store's
:meth:`~kqueue.stores.redis.RedisStore.translate` turns them into kqueue's as for the sync
store. :func:`lean_connection` says when it applies (plain TCP or a Unix socket, RESP2,
hiredis installed); otherwise the store keeps to redis-py's asyncio connection.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

from kqueue import inflight

__all__ = ["LeanRedisConnection", "lean_connection"]


def _errors() -> Any:
    import redis.exceptions

    return redis.exceptions


def _reply_error(message: str) -> Exception:
    errors = _errors()
    if message.startswith("NOSCRIPT"):
        return errors.NoScriptError(message)  # type: ignore[no-any-return]
    return errors.ResponseError(message)  # type: ignore[no-any-return]


class _Replies(asyncio.Protocol):
    def __init__(self, conn: LeanRedisConnection) -> None:
        import hiredis

        self.conn = conn
        self.reader = hiredis.Reader(
            protocolError=_errors().InvalidResponse, replyError=_reply_error
        )

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        replies = []
        try:
            while (reply := reader.gets()) is not False:
                replies.append(reply)
        except Exception as exc:  # a protocol error: the stream is out of step
            self.conn.broken(self, _errors().ConnectionError(f"bad reply from Redis: {exc}"))
            return
        self.conn.deliver(self, replies)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection to Redis lost: {exc or 'closed by the server'}"
        self.conn.broken(self, _errors().ConnectionError(reason))


class LeanRedisConnection:
    """One Redis connection for asyncio that many coroutines share, their commands pipelined
    (see the module docstring). It connects on first use and after a loss; ``settings`` are
    redis-py's connection keywords (host, port or path, db, username, password,
    client_name, socket_connect_timeout, socket_timeout)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        import hiredis

        self._pack = hiredis.pack_command
        self.settings = settings
        self.command_timeout: float | None = settings.get("socket_timeout")
        self._transport: asyncio.Transport | None = None
        self._protocol: _Replies | None = None
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._connecting = asyncio.Lock()
        self._deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    async def call(self, *args: Any) -> Any:
        """Send one command; its reply (an error reply raised as redis-py's error)."""
        if self._transport is None:
            await self._connect()
        reply = await self._send(self._pack(args))
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _send(self, packed: bytes) -> asyncio.Future[Any]:
        transport = self._transport
        if transport is None:
            raise _errors().ConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self.command_timeout is not None:
            if not self._waiters:
                self._deadline = loop.time() + self.command_timeout
            if self._watchdog is None:
                self._watchdog = loop.call_at(self._deadline, self._check_deadline)
        self._waiters.append(future)
        transport.write(packed)
        return future

    async def _connect(self) -> None:
        async with self._connecting:
            if self._transport is None:
                await self._open()

    async def _open(self) -> None:
        settings, loop = self.settings, asyncio.get_running_loop()
        protocol = _Replies(self)
        path = settings.get("path")
        if path:
            opening = loop.create_unix_connection(lambda: protocol, path)
        else:
            host, port = settings.get("host", "localhost"), settings.get("port", 6379)
            opening = loop.create_connection(lambda: protocol, host, port)
        try:
            transport, _ = await asyncio.wait_for(opening, settings.get("socket_connect_timeout"))
        except (OSError, asyncio.TimeoutError) as exc:
            where = path or f"{settings.get('host')}:{settings.get('port')}"
            raise _errors().ConnectionError(f"cannot connect to {where}: {exc}") from exc
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert isinstance(transport, asyncio.Transport)
        self._transport, self._protocol = transport, protocol
        try:
            await self._hello()
        except BaseException:
            self.close()
            raise

    async def _hello(self) -> None:
        """What redis-py sends on connecting: credentials, the client's name, the database."""
        settings, errors = self.settings, _errors()
        password, username = settings.get("password"), settings.get("username")
        if password is not None or username is not None:
            auth = ("AUTH", password) if username is None else ("AUTH", username, password)
            try:
                await self._checked(auth)
            except errors.ResponseError as exc:
                raise errors.AuthenticationError(str(exc)) from exc
        if settings.get("client_name"):
            await self._checked(("CLIENT", "SETNAME", settings["client_name"]))
        if settings.get("db"):
            await self._checked(("SELECT", settings["db"]))

    async def _checked(self, args: tuple[Any, ...]) -> Any:
        reply = await self._send(self._pack(args))
        if isinstance(reply, Exception):
            raise reply
        return reply

    def deliver(self, protocol: _Replies, replies: list[Any]) -> None:
        """Hand ``replies`` to the oldest waiters (from the protocol's callback)."""
        if protocol is not self._protocol:
            return
        if not inflight.deliver(self._waiters, replies):
            self.broken(protocol, _errors().ConnectionError("a Redis reply nobody asked for"))
            return
        if self.command_timeout is not None:
            self._deadline = asyncio.get_running_loop().time() + self.command_timeout

    def _check_deadline(self) -> None:
        self._watchdog = None
        if self.command_timeout is None:
            return
        timeout = self.command_timeout
        self._watchdog = inflight.watch_deadline(
            self._waiters,
            self._deadline,
            self._check_deadline,
            lambda: self._lost(_errors().TimeoutError(f"no reply within {timeout:g} s")),
        )

    def broken(self, protocol: _Replies, error: Exception) -> None:
        """The transport of ``protocol`` failed (if it is still this connection's)."""
        if protocol is self._protocol:
            self._lost(error)

    def _lost(self, error: Exception) -> None:
        transport, self._transport, self._protocol = self._transport, None, None
        watchdog, self._watchdog = self._watchdog, None
        waiters, self._waiters = self._waiters, collections.deque()
        inflight.abort(transport, watchdog, waiters, error)

    def close(self) -> None:
        """Close the socket; the commands in flight fail (the next call connects again)."""
        self._lost(_errors().ConnectionError("connection to Redis closed"))


_SUPPORTED = {
    "host",
    "port",
    "path",
    "db",
    "username",
    "password",
    "client_name",
    "socket_connect_timeout",
    "socket_timeout",
}
"""redis-py connection settings this connection honours: with any other (TLS, RESP3, a
credential provider ...) the store keeps to redis-py."""


def lean_connection(client: Any) -> LeanRedisConnection | None:
    """A lean connection with the settings of a ``redis.asyncio`` client's pool, or None when
    they need more than it does (or hiredis is not installed)."""
    try:
        import hiredis  # noqa: F401
        from redis.asyncio.connection import Connection, UnixDomainSocketConnection
    except ImportError:
        return None
    pool = client.connection_pool
    if pool.connection_class not in (Connection, UnixDomainSocketConnection):
        return None
    ignored = {"retry", "himport_registry", "maint_notifications_pool_handler"}
    ignored |= {"maint_notifications_config", "orig_host_address"}
    ignored |= {"orig_socket_timeout", "orig_socket_connect_timeout"}
    settings = {k: v for k, v in pool.connection_kwargs.items() if k not in ignored}
    if settings.get("protocol") in (2, "2"):
        del settings["protocol"]
    if set(settings) - _SUPPORTED:
        return None
    return LeanRedisConnection(settings)
