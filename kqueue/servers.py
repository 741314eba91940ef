"""The beanstalkd servers of a queue: one or several, each with its connection and health.

A queue over several beanstalkd servers ("bonded") is one queue to its users: producers put
each batch on one server, workers reserve from all of them, and every job's
:class:`~kqueue.stores.base.BrokerRef` names the server process that holds it (its ``stats``
id), so recovery, acks and lookups go to the right one.

Which server takes the next batch: round robin, one batch (one ``add_job``, or up to
:data:`~kqueue.enqueue.BATCH_SIZE` jobs of an ``add_jobs``) per turn, skipping servers
marked down. Round robin needs no round trip to decide (asking every server how loaded it
is would cost more than a put) and keeps the servers equally filled when the producers are
alike; a batch stays on one server, so its puts remain one pipelined burst. Workers drain
every server at once, so an uneven fill only changes which server a job waits on.

A server that refuses a connection or times out is marked down (see
:class:`~kqueue.health.BrokerHealth`) and probed in the background: while it is down, adds
skip it at no cost, and the jobs it was being given go to the next server in the same call.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.wire import ReservedJob, ServerStats
from kqueue.config import QueueConfig, format_address
from kqueue.errors import BrokerError
from kqueue.health import BrokerHealth
from kqueue.sightings import ServerWatch
from kqueue.stores.base import Store

__all__ = ["BeanstalkServer", "ServerConnections", "ServerSet", "sum_stats"]

logger = logging.getLogger("kqueue")

T = TypeVar("T")


class BeanstalkServer:
    """One beanstalkd server of a queue: its address, one connection (used under
    :attr:`lock`) and whether it is believed up."""

    def __init__(self, config: QueueConfig, address: tuple[str, int]) -> None:
        self.address = format_address(*address)
        """``host:port``, as configured."""
        self.conn = config.new_connection(address)
        self.health = BrokerHealth(config, address=address)
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        state = "down" if self.health.down is not None else "up"
        return f"<BeanstalkServer {self.address} {state}>"

    @property
    def up(self) -> bool:
        """True unless the server is marked down (and being probed)."""
        return self.health.down is None

    def server_id(self) -> str:
        """The ``stats`` id of the server process behind the connection (connecting first)."""
        return self.conn.server_id()

    def close(self) -> None:
        """Close the connection and stop probing."""
        self.health.close()
        self.conn.close()


class ServerSet:
    """Every beanstalkd server of a queue (``config.addresses``), in configured order."""

    def __init__(self, config: QueueConfig) -> None:
        self.members = [BeanstalkServer(config, address) for address in config.addresses]
        self._turn = itertools.count()

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[BeanstalkServer]:
        return iter(self.members)

    @property
    def first(self) -> BeanstalkServer:
        """The first configured server (the only one of a queue that is not bonded)."""
        return self.members[0]

    def rotation(self) -> list[BeanstalkServer]:
        """Every server, starting with the one whose turn it is (round robin per call)."""
        members = self.members
        if len(members) == 1:
            return members
        start = next(self._turn) % len(members)
        return members[start:] + members[:start]

    def connect(self) -> None:
        """Connect to every server; an unreachable one is marked down. Raises only when
        none can be reached (the error of the first)."""
        if len(self.members) == 1:
            self.first.conn.connect()  # one server: its error, as it always was
            return
        errors: list[BrokerError] = []
        for server in self.members:
            try:
                with server.lock:
                    server.conn.connect()
            except BrokerError as exc:
                server.health.failed(exc)
                errors.append(exc)
        if len(errors) == len(self.members):
            raise errors[0]

    def close(self) -> None:
        """Close every connection and stop every probe."""
        for server in self.members:
            server.close()

    @property
    def connected(self) -> bool:
        """True while a connection to some server is open."""
        return any(server.conn.connected for server in self.members)


MAX_NOT_SUM = frozenset({"pause", "pause-time-left", "uptime", "max-job-size", "pid"})
"""Stats fields that make no sense summed over servers: the largest is shown."""


def sum_stats(each: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stats of several servers (``stats`` or ``stats-tube`` replies) as one: counts summed,
    :data:`MAX_NOT_SUM` fields at their largest, text fields comma-joined where they differ."""
    summed: dict[str, Any] = {}
    for stats in each:
        for name, value in stats.items():
            if name not in summed:
                summed[name] = value
            elif isinstance(value, bool) or not isinstance(value, int | float):
                if str(value) not in str(summed[name]).split(","):
                    summed[name] = f"{summed[name]},{value}"
            elif name in MAX_NOT_SUM:
                summed[name] = max(summed[name], value)
            else:
                summed[name] += value
    return summed


class ServerConnections:
    """One connection to every server of ``config`` (the admin's), and what it learns of
    them: which server id answered at which address, and since when one stays silent."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.conns = [config.new_connection(address) for address in config.addresses]
        self._watch = ServerWatch([conn.address for conn in self.conns], config.server_down_grace)

    def each(self, do: Callable[[BeanstalkConnection], T]) -> list[T]:
        """``do`` on every server's connection; what each returned. Of a bonded queue, a
        server that fails is logged and left out, unless every one fails (then its error is
        raised, as a single server's is)."""
        if len(self.conns) == 1:
            return [do(self.conns[0])]
        done: list[T] = []
        errors: list[BrokerError] = []
        for conn in self.conns:
            try:
                done.append(do(conn))
            except BrokerError as exc:
                logger.warning("beanstalkd at %s left out: %s", conn.address, exc)
                errors.append(exc)
        if errors and not done:
            raise errors[0]
        return done

    def each_one(
        self, conn: BeanstalkConnection, do: Callable[[BeanstalkConnection], T]
    ) -> T | None:
        """``do`` on one server; of a bonded queue a failing server gives None (logged)."""
        if len(self.conns) == 1:
            return do(conn)
        try:
            return do(conn)
        except BrokerError as exc:
            logger.warning("beanstalkd at %s left out: %s", conn.address, exc)
            return None

    def live(self) -> list[tuple[BeanstalkConnection, str]]:
        """Every server that answers now, with its id (at least one, or the error)."""
        return self.each(lambda conn: (conn, conn.server_id()))

    def stats(self) -> dict[str, ServerStats | str]:
        """Each server's stats by address, or the error of one that did not answer."""
        each: dict[str, ServerStats | str] = {}
        for conn in self.conns:
            try:
                each[conn.address] = conn.stats()
            except BrokerError as exc:
                each[conn.address] = str(exc)
        return each

    def locate(self, job_id: int) -> list[tuple[str, ReservedJob]]:
        """Every server (address) that holds a job of this id, with the job: ids are each
        server's own, so on a bonded queue several may."""
        found = self.each(lambda conn: (conn.address, conn.peek(job_id)))
        return [(address, job) for address, job in found if job is not None]

    def holding(self, job_id: int) -> list[BeanstalkConnection]:
        """The connections of the servers holding a job of this id."""
        held = {address for address, _ in self.locate(job_id)}
        return [conn for conn in self.conns if conn.address in held]

    def down_for_now(self, live: Sequence[BeanstalkConnection], store: Store | None) -> set[str]:
        """The ids of the servers that do not answer now but did, less than
        ``server_down_grace`` seconds ago (as this process or the store remembers, see
        :mod:`kqueue.sightings`): their jobs are left to them this pass (a server that comes
        back with its binlog still holds them). Of a bonded queue only; the live servers'
        sightings are noted in ``store``."""
        if len(self.conns) == 1:
            return set()
        return self._watch.down_for_now({c.address: c.server_id() for c in live}, store)


def peek_in(
    conn: BeanstalkConnection,
    tube: str,
    peek: Callable[[BeanstalkConnection], ReservedJob | None],
) -> ReservedJob | None:
    """``peek`` (ready, delayed or buried) in ``tube``."""
    conn.use(tube)
    return peek(conn)


def address_of(conn: BeanstalkConnection) -> tuple[str, int]:
    """(host, port) of a connection's server."""
    return (conn.host, conn.port)


def connected(conn: BeanstalkConnection) -> BeanstalkConnection:
    """``conn``, connected (or its error raised)."""
    conn.connect()
    return conn
