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
import threading
from collections.abc import Iterator

from kqueue.config import QueueConfig, format_address
from kqueue.errors import BrokerError
from kqueue.health import BrokerHealth

__all__ = ["BeanstalkServer", "ServerSet"]


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
