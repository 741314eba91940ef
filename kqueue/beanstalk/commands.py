"""Every beanstalkd command kqueue sends, written once: its frame, success replies, converter.

A :class:`Command` says which reply words mean success and turns such a reply into a Python
value; the functions below frame one call of it as a :class:`Call`. The same call runs at
once (:meth:`~kqueue.beanstalk.connection.BeanstalkConnection.run`) or queued in a pipeline
(:meth:`~kqueue.beanstalk.pipeline.Pipeline.add`), the way redis-py's Pipeline reuses its
client's commands. Error replies map to exceptions through :data:`ERROR_REPLIES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Generic, NamedTuple, TypeVar

from kqueue.beanstalk.wire import (
    JobStats,
    Reply,
    ReservedJob,
    ServerStats,
    TubeStats,
    parse_job_stats,
    parse_server_stats,
    parse_tube_stats,
    parse_yaml_list,
)
from kqueue.errors import (
    BrokerDrainingError,
    BrokerError,
    BrokerProtocolError,
    BrokerServerError,
    JobTooBigError,
    KQueueError,
)

T = TypeVar("T")

ERROR_REPLIES: dict[bytes, type[BrokerError] | type[JobTooBigError]] = {
    b"OUT_OF_MEMORY": BrokerServerError,
    b"INTERNAL_ERROR": BrokerServerError,
    b"BAD_FORMAT": BrokerProtocolError,
    b"UNKNOWN_COMMAND": BrokerProtocolError,
    b"EXPECTED_CRLF": BrokerProtocolError,
    b"JOB_TOO_BIG": JobTooBigError,
    b"DRAINING": BrokerDrainingError,
}
"""Error replies any command may get, and the exception each becomes."""


class DeadlineSoon(BrokerError):
    """The connection holds a reserved job whose TTR is about to run out (DEADLINE_SOON)."""


class RefusedReply(Exception):
    """A success word whose meaning is a failure (a put answered BURIED: out of memory).

    The connection turns it into :class:`~kqueue.errors.BrokerServerError` with its address."""


class Command(Generic[T]):
    """One beanstalkd command: its name, the reply words that mean success, the converter."""

    __slots__ = ("convert", "expected", "name")

    def __init__(
        self, name: bytes, expected: tuple[bytes, ...], convert: Callable[[Reply], T]
    ) -> None:
        self.name = name
        self.expected = expected
        self.convert = convert

    def __repr__(self) -> str:
        return f"<Command {self.name.decode()}>"


class Call(Generic[T]):
    """One framed command, ready to send; ``tube`` for the commands that change tube state."""

    __slots__ = ("command", "frame", "tube")

    def __init__(self, command: Command[T], frame: bytes, tube: str | None = None) -> None:
        self.command = command
        self.frame = frame
        self.tube = tube


class UnexpectedReply(BrokerProtocolError):
    """A reply word the command never gets: the connection is out of step (close it)."""


def result_of(command: Command[T], reply: Reply, address: str) -> T:
    """``command``'s value from ``reply``, or the error the reply means, raised (the one
    check of a reply, for the sync and the asyncio connection alike)."""
    if reply.word not in command.expected:
        name = command.name.decode(errors="replace")
        error = ERROR_REPLIES.get(reply.word)
        if error is not None:
            raise error(f"beanstalkd at {address} answered {reply.word.decode()} to {name}")
        raise UnexpectedReply(f"beanstalkd at {address}: unexpected reply {reply.word!r} to {name}")
    try:
        return command.convert(reply)
    except RefusedReply as exc:
        raise BrokerServerError(f"beanstalkd at {address}: {exc}") from None
    except DeadlineSoon as exc:
        raise DeadlineSoon(f"beanstalkd at {address}: {exc}") from None


_NOT_RUN = object()


class Pending(Generic[T]):
    """The future result of one pipelined command (sync or asyncio)."""

    __slots__ = ("_error", "_value", "call")

    def __init__(self, call: Call[T]) -> None:
        self.call = call
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

    def set(self, value: T) -> None:
        """Settle with the command's value."""
        self._value = value

    def fail(self, error: KQueueError) -> None:
        """Settle with the command's error."""
        self._error = error

    def result(self) -> T:
        """The command's result; raises its error (or BrokerError if never executed)."""
        if self._error is not None:
            raise self._error
        if self._value is _NOT_RUN:
            name = self.call.command.name.decode()
            raise BrokerError(f"pipelined command {name!r} was never executed")
        return self._value  # type: ignore[return-value]


def settle_puts(
    left: Sequence[int], slots: Sequence[Pending[int]], ids: list[int]
) -> tuple[list[int], KQueueError | None]:
    """Write into ``ids`` the job ids of the puts of a burst that succeeded (``slots[n]`` put
    the body at index ``left[n]``); the indexes still to put, and the first error among them."""
    still: list[int] = []
    error: KQueueError | None = None
    for index, slot in zip(left, slots, strict=True):
        if slot.done and slot.error is None:
            ids[index] = slot.result()
        else:
            still.append(index)
            error = error or slot.error
    return still, error


# -- converters ----------------------------------------------------------------------------


def _nothing(reply: Reply) -> None:
    return None


def _first_int(reply: Reply) -> int:
    return int(reply.args[0])


def _found(reply: Reply) -> bool:
    return reply.word != b"NOT_FOUND"


def _inserted(reply: Reply) -> int:
    if reply.word == b"BURIED":
        raise RefusedReply(f"ran out of memory and buried job {reply.args[0]!r}")
    return int(reply.args[0])


def _job(reply: Reply) -> ReservedJob | None:
    """RESERVED / FOUND with a body: the job; anything else (NOT_FOUND, TIMED_OUT, ...)."""
    if reply.body is None or reply.word not in (b"RESERVED", b"FOUND"):
        return None
    return ReservedJob(int(reply.args[0]), reply.body)


def _reserved(reply: Reply) -> ReservedJob | None:
    if reply.word == b"DEADLINE_SOON":
        raise DeadlineSoon("a job reserved on this connection is near its TTR")
    return _job(reply)


def _watching(reply: Reply) -> bool:
    return reply.word == b"WATCHING"


def _server_stats(reply: Reply) -> ServerStats:
    return parse_server_stats(reply.body or b"")


def _tube_stats(reply: Reply) -> TubeStats | None:
    return None if reply.body is None else parse_tube_stats(reply.body)


def _job_stats(reply: Reply) -> JobStats | None:
    return None if reply.body is None else parse_job_stats(reply.body)


def _tubes(reply: Reply) -> list[str]:
    return parse_yaml_list(reply.body or b"")


class JobCounts(NamedTuple):
    """What a worker needs of ``stats-job`` before running a job: its tube and counters."""

    tube: str
    reserves: int
    releases: int
    buries: int

    @property
    def unfinished(self) -> int:
        """Earlier reserves that ended in neither a release nor a bury: the TTR ran out, or
        the connection holding the job closed (a worker that died). Each was an attempt."""
        return max(0, self.reserves - 1 - self.releases - self.buries)


_COUNTS = re.compile(rb"\n(tube|reserves|releases|buries): ([^\n]*)")


def _job_counts(reply: Reply) -> JobCounts | None:
    if reply.body is None:
        return None
    found = {name: value.strip() for name, value in _COUNTS.findall(reply.body)}
    tube = found.get(b"tube", b"").strip(b'"').decode("utf-8", "replace")
    return JobCounts(
        tube,
        int(found.get(b"reserves", b"0")),
        int(found.get(b"releases", b"0")),
        int(found.get(b"buries", b"0")),
    )


_READY = re.compile(rb"\ncurrent-jobs-ready: ([0-9]+)")


def _ready_count(reply: Reply) -> int:
    match = _READY.search(reply.body or b"")
    return int(match.group(1)) if match else 0


# -- the table -----------------------------------------------------------------------------

USE = Command(b"use", (b"USING",), _nothing)
PUT = Command(b"put", (b"INSERTED", b"BURIED"), _inserted)
WATCH = Command(b"watch", (b"WATCHING",), _first_int)
IGNORE = Command(b"ignore", (b"WATCHING", b"NOT_IGNORED"), _watching)
RESERVE = Command(b"reserve", (b"RESERVED", b"TIMED_OUT", b"DEADLINE_SOON"), _reserved)
RESERVE_NOWAIT = Command(
    b"reserve-with-timeout", (b"RESERVED", b"TIMED_OUT", b"DEADLINE_SOON"), _job
)
"""A non-blocking reserve: DEADLINE_SOON (a held job near its TTR) counts as none ready."""
RESERVE_JOB = Command(b"reserve-job", (b"RESERVED", b"NOT_FOUND"), _job)
DELETE = Command(b"delete", (b"DELETED", b"NOT_FOUND"), _found)
RELEASE = Command(b"release", (b"RELEASED", b"BURIED", b"NOT_FOUND"), _found)
BURY = Command(b"bury", (b"BURIED", b"NOT_FOUND"), _found)
TOUCH = Command(b"touch", (b"TOUCHED", b"NOT_FOUND"), _found)
PEEK = Command(b"peek", (b"FOUND", b"NOT_FOUND"), _job)
KICK = Command(b"kick", (b"KICKED",), _first_int)
KICK_JOB = Command(b"kick-job", (b"KICKED", b"NOT_FOUND"), _found)
STATS = Command(b"stats", (b"OK",), _server_stats)
STATS_TUBE = Command(b"stats-tube", (b"OK", b"NOT_FOUND"), _tube_stats)
READY_COUNT = Command(b"stats-tube", (b"OK", b"NOT_FOUND"), _ready_count)
"""``stats-tube`` read for its ready count only (a regex, not a full parse: the worker's path)."""
STATS_JOB = Command(b"stats-job", (b"OK", b"NOT_FOUND"), _job_stats)
JOB_COUNTS = Command(b"stats-job", (b"OK", b"NOT_FOUND"), _job_counts)
"""``stats-job`` read for a job's tube and counters only (a regex: the worker's path)."""
LIST_TUBES = Command(b"list-tubes", (b"OK",), _tubes)
PAUSE_TUBE = Command(b"pause-tube", (b"PAUSED", b"NOT_FOUND"), _found)


# -- framing -------------------------------------------------------------------------------


def use(tube: str) -> Call[None]:
    """Put new jobs into ``tube``."""
    return Call(USE, b"use %s\r\n" % tube.encode(), tube)


def put(body: bytes, *, priority: int, delay: int, ttr: int) -> Call[int]:
    """Put a job into the used tube; its id."""
    return Call(PUT, b"put %d %d %d %d\r\n%s\r\n" % (priority, delay, ttr, len(body), body))


def watch(tube: str) -> Call[int]:
    """Add ``tube`` to the watch list; how many tubes are watched."""
    return Call(WATCH, b"watch %s\r\n" % tube.encode(), tube)


def ignore(tube: str) -> Call[bool]:
    """Remove ``tube`` from the watch list; False if it is the last one (NOT_IGNORED)."""
    return Call(IGNORE, b"ignore %s\r\n" % tube.encode(), tube)


def reserve_nowait() -> Call[ReservedJob | None]:
    """Reserve a ready job of a watched tube without waiting; None if none is ready."""
    return Call(RESERVE_NOWAIT, b"reserve-with-timeout 0\r\n")


def reserve_job(job_id: int) -> Call[ReservedJob | None]:
    """Reserve a ready, delayed or buried job by id (any tube); None if not found."""
    return Call(RESERVE_JOB, b"reserve-job %d\r\n" % job_id)


def delete(job_id: int) -> Call[bool]:
    """Delete a job; False if not found (or reserved by another connection)."""
    return Call(DELETE, b"delete %d\r\n" % job_id)


def release(job_id: int, *, priority: int, delay: int) -> Call[bool]:
    """Release a job reserved by this connection; False if not found."""
    return Call(RELEASE, b"release %d %d %d\r\n" % (job_id, priority, delay))


def bury(job_id: int, *, priority: int) -> Call[bool]:
    """Bury a job reserved by this connection; False if not found."""
    return Call(BURY, b"bury %d %d\r\n" % (job_id, priority))


def touch(job_id: int) -> Call[bool]:
    """Give a reserved job its full TTR again; False if not found."""
    return Call(TOUCH, b"touch %d\r\n" % job_id)


def peek(job_id: int) -> Call[ReservedJob | None]:
    """A job by id in any state, or None."""
    return Call(PEEK, b"peek %d\r\n" % job_id)


def peek_ready() -> Call[ReservedJob | None]:
    """The next ready job of the used tube, or None."""
    return Call(PEEK, b"peek-ready\r\n")


def peek_delayed() -> Call[ReservedJob | None]:
    """The delayed job of the used tube with the nearest deadline, or None."""
    return Call(PEEK, b"peek-delayed\r\n")


def peek_buried() -> Call[ReservedJob | None]:
    """The oldest buried job of the used tube, or None."""
    return Call(PEEK, b"peek-buried\r\n")


def kick(bound: int) -> Call[int]:
    """Kick up to ``bound`` buried (else delayed) jobs of the used tube; how many."""
    return Call(KICK, b"kick %d\r\n" % bound)


def kick_job(job_id: int) -> Call[bool]:
    """Kick one buried or delayed job; False if not found."""
    return Call(KICK_JOB, b"kick-job %d\r\n" % job_id)


def stats() -> Call[ServerStats]:
    """Server statistics."""
    return Call(STATS, b"stats\r\n")


def stats_tube(tube: str) -> Call[TubeStats | None]:
    """Statistics of one tube, or None if it does not exist."""
    return Call(STATS_TUBE, b"stats-tube %s\r\n" % tube.encode())


def ready_count(tube: str) -> Call[int]:
    """How many jobs are ready in ``tube`` (0 if it does not exist)."""
    return Call(READY_COUNT, b"stats-tube %s\r\n" % tube.encode())


def stats_job(job_id: int) -> Call[JobStats | None]:
    """Statistics of one job, or None if not found."""
    return Call(STATS_JOB, b"stats-job %d\r\n" % job_id)


def job_counts(job_id: int) -> Call[JobCounts | None]:
    """A job's tube and reserve / release / bury counters, or None if not found."""
    return Call(JOB_COUNTS, b"stats-job %d\r\n" % job_id)


def list_tubes() -> Call[list[str]]:
    """Every tube that exists on the server."""
    return Call(LIST_TUBES, b"list-tubes\r\n")


def pause_tube(tube: str, delay: int) -> Call[bool]:
    """Hold back reserves from ``tube`` for ``delay`` seconds (0 lifts it); False if none."""
    return Call(PAUSE_TUBE, b"pause-tube %s %d\r\n" % (tube.encode(), delay))
