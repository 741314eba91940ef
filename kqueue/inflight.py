"""Commands in flight on an asyncio socket: reply futures in order, and their watchdog.

The asyncio beanstalkd connection (:mod:`kqueue.beanstalk.aio_connection`) and the asyncio
Redis client (:mod:`kqueue.aio.resp`) both pipeline: each command written adds a future to
a queue, each reply read settles the oldest one, and a watchdog fails them all when no
reply comes in time. These are the steps they share; what a reply or an error is stays
theirs. Nothing here reads or writes a socket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["abort", "deliver", "watch_deadline"]

T = TypeVar("T")


def deliver(waiters: deque[asyncio.Future[T]], replies: Iterable[T]) -> bool:
    """Hand ``replies`` to the oldest ``waiters`` in order (a cancelled waiter's reply is
    dropped: the order stays right); False at the first reply nobody asked for."""
    for reply in replies:
        if not waiters:
            return False
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(reply)
    return True


def abort(
    transport: asyncio.Transport | None,
    watchdog: asyncio.TimerHandle | None,
    waiters: Iterable[asyncio.Future[T]],
    error: BaseException,
) -> None:
    """Stop the ``watchdog``, abort the ``transport`` and fail every waiter with ``error``
    (the caller has already forgotten all three)."""
    if watchdog is not None:
        watchdog.cancel()
    if transport is not None:
        transport.abort()
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)


def watch_deadline(
    waiters: deque[asyncio.Future[T]],
    deadline: float,
    check: Callable[[], None],
    expire: Callable[[], None],
) -> asyncio.TimerHandle | None:
    """One step of the watchdog: ``expire()`` once the ``deadline`` (loop time) passed with
    replies still awaited, else ``check`` scheduled again at it; the new handle, or None
    when nothing is awaited or it expired."""
    if not waiters:
        return None
    loop = asyncio.get_running_loop()
    if loop.time() >= deadline:
        expire()
        return None
    return loop.call_at(deadline, check)
