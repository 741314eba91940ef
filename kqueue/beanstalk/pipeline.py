"""Pipelined beanstalkd commands: many in flight on one connection, replies matched in order.

beanstalkd answers the commands of one connection strictly in order, so a burst of commands
can go out in a single ``send`` and the replies be read back in one pass: a batch costs one
round trip instead of one per command. ::

    with Pipeline(conn) as pipe:      # or pipe = Pipeline(conn); ...; pipe.execute()
        ids = [pipe.put(body, priority=1, delay=0, ttr=30) for body in bodies]
    print([pending.result() for pending in ids])

The commands are the connection's own (:mod:`kqueue.beanstalk.commands`): :meth:`Pipeline.add`
queues any :class:`~kqueue.beanstalk.commands.Call` and returns a :class:`Pending` that holds
its result once :meth:`Pipeline.execute` has run. An error reply fails only its own command.
When the connection drops (or a reply does not come within the connection's
``command_timeout`` of the one before), every command still in flight fails with the same
:class:`~kqueue.errors.BrokerConnectionError` (or :class:`~kqueue.errors.BrokerTimeoutError`),
``execute`` raises it, and the commands answered before the drop keep their results: a caller
knows exactly which puts went through.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.commands import Call, Pending
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.wire import PipelineBroken, Reply, ReservedJob
from kqueue.errors import KQueueError

__all__ = ["Pending", "Pipeline", "delete_jobs", "reserve_ready"]

T = TypeVar("T")

_MAX_BURST = 1024
"""Commands per write: bounds the memory a burst of reserve replies may take at once."""


class Pipeline:
    """Commands queued on one connection and sent together by :meth:`execute`."""

    def __init__(self, conn: BeanstalkConnection) -> None:
        self._conn = conn
        self._pending: list[Pending[Any]] = []

    def __len__(self) -> int:
        return len(self._pending)

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

    def add(self, call: Call[T]) -> Pending[T]:
        """Queue one command (any of :mod:`kqueue.beanstalk.commands`); its future result."""
        pending = Pending(call)
        self._pending.append(pending)
        return pending

    # -- shortcuts for the commands batches use --------------------------------------------

    def use(self, tube: str) -> Pending[None]:
        """Put the following jobs into ``tube``."""
        return self.add(cmd.use(tube))

    def put(self, body: bytes, *, priority: int, delay: int, ttr: int) -> Pending[int]:
        """Put a job into the used tube; its id."""
        return self.add(cmd.put(body, priority=priority, delay=delay, ttr=ttr))

    def reserve_nowait(self) -> Pending[ReservedJob | None]:
        """Reserve a ready job of a watched tube without waiting (None: none ready)."""
        return self.add(cmd.reserve_nowait())

    def ready_count(self, tube: str) -> Pending[int]:
        """How many jobs are ready in ``tube`` (0 if it does not exist)."""
        return self.add(cmd.ready_count(tube))

    def delete(self, job_id: int) -> Pending[bool]:
        """Delete a job; False if not found."""
        return self.add(cmd.delete(job_id))

    def release(self, job_id: int, *, priority: int, delay: int) -> Pending[bool]:
        """Release a job reserved by this connection; False if not found."""
        return self.add(cmd.release(job_id, priority=priority, delay=delay))

    def bury(self, job_id: int, *, priority: int) -> Pending[bool]:
        """Bury a job reserved by this connection; False if not found."""
        return self.add(cmd.bury(job_id, priority=priority))

    def touch(self, job_id: int) -> Pending[bool]:
        """Give a reserved job its full TTR again; False if not found."""
        return self.add(cmd.touch(job_id))

    # -- running ---------------------------------------------------------------------------

    def execute(self) -> None:
        """Send every queued command and settle each :class:`Pending`.

        Raises the connection's error (after failing every command left in flight) when the
        connection drops or times out; error replies fail only their own command.
        """
        queued, self._pending = self._pending, []
        for start in range(0, len(queued), _MAX_BURST):
            burst = queued[start : start + _MAX_BURST]
            data = b"".join(pending.call.frame for pending in burst)
            try:
                replies = self._conn.exchange(data, len(burst))
            except PipelineBroken as broken:
                self._settle(burst, broken.replies)
                for pending in queued[start + len(broken.replies) :]:
                    pending.fail(broken.error)
                raise broken.error from broken.error.__cause__
            self._settle(burst, replies)

    def _settle(self, burst: list[Pending[Any]], replies: list[Reply]) -> None:
        settle = self._conn.settle
        for pending, reply in zip(burst, replies, strict=False):
            try:
                pending.set(settle(pending.call, reply))
            except KQueueError as exc:
                pending.fail(exc)


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
    call = cmd.reserve_nowait()
    jobs = []
    for reply in _exchange_all(conn, call.frame * count, count):
        job = conn.convert(cmd.RESERVE_NOWAIT, reply)
        if job is not None:
            jobs.append(job)
    return jobs


def delete_jobs(conn: BeanstalkConnection, job_ids: list[int]) -> None:
    """Delete jobs (reserved on ``conn``, or not reserved at all) in one burst; a job already
    gone is fine. Raises the connection's error when it drops."""
    if not job_ids:
        return
    data = b"".join(cmd.delete(job_id).frame for job_id in job_ids)
    for reply in _exchange_all(conn, data, len(job_ids)):
        if reply.word != b"DELETED":
            conn.convert(cmd.DELETE, reply)


def watch_exactly(conn: BeanstalkConnection, wanted: Sequence[str]) -> None:
    """Make ``conn`` watch ``wanted`` and nothing else, in one pipelined burst however many
    tubes (watches first: beanstalkd never lets a connection ignore its last tube)."""
    watched = conn.watched
    have, keep = set(watched), set(wanted)
    pipe = Pipeline(conn)
    for tube in wanted:
        if tube not in have:
            pipe.add(cmd.watch(tube))
    for tube in watched:
        if tube not in keep:
            pipe.add(cmd.ignore(tube))
    pipe.execute()
