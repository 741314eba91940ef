"""Pipelined beanstalkd commands: many in flight on one connection, replies matched in order.

beanstalkd answers the commands of one connection strictly in order, so a burst of commands
can go out in a single ``send`` and the replies be read back in one pass: a batch costs one
round trip instead of one per command. ::

    with conn.pipeline() as pipe:        # or pipe = conn.pipeline(); ...; pipe.execute()
        ids = [pipe.put(body, priority=1, delay=0, ttr=30) for body in bodies]
    print([pending.result() for pending in ids])

Each queued command returns a :class:`Pending` that holds its result once
:meth:`Pipeline.execute` has run. An error reply (``JOB_TOO_BIG``, ``NOT_FOUND`` where it is an
error, ...) fails only its own command. When the connection drops (or a reply does not come
within the connection's ``command_timeout`` of the one before), every command still in flight
fails with the same :class:`~kqueue.errors.BrokerConnectionError` (or
:class:`~kqueue.errors.BrokerTimeoutError`), ``execute`` raises it, and the commands answered
before the drop keep their results: a caller knows exactly which puts went through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from kqueue.broker import PipelineBroken, Reply, ReservedJob
from kqueue.errors import BrokerError, BrokerServerError, KQueueError

if TYPE_CHECKING:
    from kqueue.broker import BeanstalkConnection

T = TypeVar("T")

_MAX_BURST = 1024
"""Commands per write: bounds the memory a burst of reserve replies may take at once."""

_NOT_RUN = object()


class Pending(Generic[T]):
    """The future result of one pipelined command."""

    __slots__ = ("_error", "_value", "command")

    def __init__(self, command: bytes) -> None:
        self.command = command
        self._value: object = _NOT_RUN
        self._error: KQueueError | None = None

    @property
    def done(self) -> bool:
        """True once the command was answered or failed."""
        return self._error is not None or self._value is not _NOT_RUN

    @property
    def error(self) -> KQueueError | None:
        """The error of this command, or None."""
        return self._error

    def result(self) -> T:
        """The command's result; raises its error (or BrokerError if never executed)."""
        if self._error is not None:
            raise self._error
        if self._value is _NOT_RUN:
            raise BrokerError(f"pipelined command {self.command!r} was never executed")
        return self._value  # type: ignore[return-value]


_Convert = Callable[[Reply], object]


class Pipeline:
    """Commands queued on one connection and sent together by :meth:`execute`."""

    def __init__(self, conn: BeanstalkConnection) -> None:
        self._conn = conn
        self._frames: list[bytes] = []
        self._slots: list[tuple[Pending[object], tuple[bytes, ...], _Convert]] = []

    def __len__(self) -> int:
        return len(self._slots)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.execute()

    def _queue(
        self, frame: bytes, command: bytes, expected: tuple[bytes, ...], convert: _Convert
    ) -> Pending[T]:
        pending: Pending[T] = Pending(command)
        self._frames.append(frame)
        self._slots.append((pending, expected, convert))  # type: ignore[arg-type]
        return pending

    # -- commands --------------------------------------------------------------------------

    def use(self, tube: str) -> Pending[None]:
        """Put the following jobs into ``tube``."""
        conn = self._conn

        def used(reply: Reply) -> None:
            conn._used = tube  # restored on reconnect like a single ``use``

        command = b"use %s" % tube.encode()
        return self._queue(command + b"\r\n", command, (b"USING",), used)

    def put(self, body: bytes, *, priority: int, delay: int, ttr: int) -> Pending[int]:
        """Put a job into the used tube; its id."""
        command = b"put %d %d %d %d" % (priority, delay, ttr, len(body))
        return self._queue(b"%s\r\n%s\r\n" % (command, body), command, _PUT_OK, self._put_id)

    def _put_id(self, reply: Reply) -> int:
        if reply.word == b"BURIED":
            raise BrokerServerError(
                f"beanstalkd at {self._conn.address} ran out of memory and buried job "
                f"{reply.args[0]!r}"
            )
        return int(reply.args[0])

    def reserve_nowait(self) -> Pending[ReservedJob | None]:
        """Reserve a ready job of a watched tube without waiting (None: none ready).

        A DEADLINE_SOON answer (this connection holds a job near its TTR) also gives None.
        """
        command = b"reserve-with-timeout 0"
        return self._queue(command + b"\r\n", command, _RESERVE_OK, _reserved)

    def ready_count(self, tube: str) -> Pending[int]:
        """How many jobs are ready in ``tube`` (``stats-tube``; 0 if it does not exist)."""
        command = b"stats-tube %s" % tube.encode()
        return self._queue(command + b"\r\n", command, (b"OK", b"NOT_FOUND"), _ready_jobs)

    def delete(self, job_id: int) -> Pending[bool]:
        """Delete a job; False if not found."""
        command = b"delete %d" % job_id
        return self._queue(command + b"\r\n", command, (b"DELETED", b"NOT_FOUND"), _found)

    def release(self, job_id: int, *, priority: int, delay: int) -> Pending[bool]:
        """Release a job reserved by this connection; False if not found."""
        command = b"release %d %d %d" % (job_id, priority, delay)
        expected = (b"RELEASED", b"BURIED", b"NOT_FOUND")
        return self._queue(command + b"\r\n", command, expected, _found)

    def bury(self, job_id: int, *, priority: int) -> Pending[bool]:
        """Bury a job reserved by this connection; False if not found."""
        command = b"bury %d %d" % (job_id, priority)
        return self._queue(command + b"\r\n", command, (b"BURIED", b"NOT_FOUND"), _found)

    def touch(self, job_id: int) -> Pending[bool]:
        """Give a reserved job its full TTR again; False if not found."""
        command = b"touch %d" % job_id
        return self._queue(command + b"\r\n", command, (b"TOUCHED", b"NOT_FOUND"), _found)

    # -- running ---------------------------------------------------------------------------

    def execute(self) -> None:
        """Send every queued command and settle each :class:`Pending`.

        Raises the connection's error (after failing every command left in flight) when the
        connection drops or times out; error replies fail only their own command.
        """
        frames, slots = self._frames, self._slots
        self._frames, self._slots = [], []
        for start in range(0, len(slots), _MAX_BURST):
            burst = slots[start : start + _MAX_BURST]
            data = b"".join(frames[start : start + _MAX_BURST])
            try:
                replies = self._conn.exchange(data, len(burst))
            except PipelineBroken as broken:
                self._settle(burst, broken.replies)
                for pending, _, _ in burst[len(broken.replies) :]:
                    pending._error = broken.error
                for pending, _, _ in slots[start + _MAX_BURST :]:
                    pending._error = broken.error
                raise broken.error from broken.error.__cause__
            self._settle(burst, replies)

    def _settle(
        self, slots: list[tuple[Pending[object], tuple[bytes, ...], _Convert]], replies: list[Reply]
    ) -> None:
        check = self._conn.check_reply
        for (pending, expected, convert), reply in zip(slots, replies, strict=False):
            try:
                pending._value = convert(check(pending.command, reply, expected))
            except KQueueError as exc:
                pending._error = exc


def _exchange_all(conn: BeanstalkConnection, data: bytes, count: int) -> list[Reply]:
    """Every reply of a burst, or the connection's error (replies read before it dropped are
    of no use to these callers)."""
    try:
        return conn.exchange(data, count)
    except PipelineBroken as broken:
        raise broken.error from broken.error.__cause__


def reserve_ready(conn: BeanstalkConnection, count: int) -> list[ReservedJob]:
    """Up to ``count`` ready jobs, with one burst of ``reserve-with-timeout 0`` (the worker's
    hot path: no :class:`Pending` per command). Raises the connection's error when it drops;
    jobs reserved before the drop go back to ready with the connection."""
    command = b"reserve-with-timeout 0"
    jobs = []
    for reply in _exchange_all(conn, (command + b"\r\n") * count, count):
        job = _reserved(conn.check_reply(command, reply, _RESERVE_OK))
        if job is not None:
            jobs.append(job)
    return jobs


def delete_jobs(conn: BeanstalkConnection, job_ids: list[int]) -> None:
    """Delete jobs (reserved on ``conn``, or not reserved at all) in one burst; a job already
    gone is fine. Raises the connection's error when it drops."""
    if not job_ids:
        return
    data = b"".join(b"delete %d\r\n" % job_id for job_id in job_ids)
    for job_id, reply in zip(job_ids, _exchange_all(conn, data, len(job_ids)), strict=True):
        if reply.word != b"DELETED":
            conn.check_reply(b"delete %d" % job_id, reply, (b"DELETED", b"NOT_FOUND"))


_PUT_OK = (b"INSERTED", b"BURIED")
_RESERVE_OK = (b"RESERVED", b"TIMED_OUT", b"DEADLINE_SOON")


def _reserved(reply: Reply) -> ReservedJob | None:
    if reply.word != b"RESERVED" or reply.body is None:
        return None
    return ReservedJob(int(reply.args[0]), reply.body)


_READY = re.compile(rb"\ncurrent-jobs-ready: ([0-9]+)")


def _ready_jobs(reply: Reply) -> int:
    match = _READY.search(reply.body or b"")
    return int(match.group(1)) if match else 0


def _found(reply: Reply) -> bool:
    return reply.word != b"NOT_FOUND"
