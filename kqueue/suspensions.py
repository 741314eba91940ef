"""Keeping the pause of a suspended job type on a server that came back empty.

beanstalkd forgets an empty tube that no connection watches or uses, and its pause with it. A
recovery pass re-applies the pause of every suspended type on every server that answers (see
:class:`~kqueue.sweeper.Sweep`), but on a server that restarted empty the tube has no job and
maybe no worker yet: when the pass's connection closed, the pause went, and a job of that type
put there next was delivered. So the queue that runs passes keeps one connection per server
watching the suspended types' tubes (never reserving), for as long as it is open.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import watch_exactly
from kqueue.errors import BrokerError

__all__ = ["SuspensionHolders"]

logger = logging.getLogger("kqueue")


class SuspensionHolders:
    """One watching connection per server address, each made by ``connect(address)`` when
    first needed; thread-safe (a background sweeper holds, another thread resumes)."""

    def __init__(self, connect: Callable[[BeanstalkConnection], BeanstalkConnection]) -> None:
        self._connect = connect
        self._holders: dict[str, BeanstalkConnection] = {}  # address -> its watcher
        self._lock = threading.Lock()

    def hold(self, tubes: Collection[str], live: Collection[BeanstalkConnection]) -> None:
        """Make the watcher of every server of ``live`` watch ``tubes`` and no other tube. A
        server that fails costs a log line (the pass that follows finds it too)."""
        wanted = set(tubes)
        with self._lock:
            for conn in live:
                holder = self._holders.get(conn.address)
                if holder is None:
                    holder = self._holders[conn.address] = self._connect(conn)
                try:
                    _watch_only(holder, wanted)
                except BrokerError as exc:
                    logger.warning("suspensions not held on %s: %s", conn.address, exc)

    def release(self, tube: str) -> None:
        """Stop keeping ``tube`` (its type was resumed); failures are left to the next hold."""
        with self._lock:
            for holder in self._holders.values():
                with contextlib.suppress(BrokerError):
                    holder.ignore(tube)

    def close(self) -> None:
        """Close every watcher (a tube with no job and no other watcher then goes)."""
        with self._lock:
            for holder in self._holders.values():
                holder.close()
            self._holders.clear()


def _watch_only(conn: BeanstalkConnection, tubes: set[str]) -> None:
    """Make ``conn`` watch ``tubes`` (and ``default``, so an ignore never empties its list).
    A ``stats`` first: a connection the server dropped (it restarted) is opened again, which
    restores what it watched, on the new process."""
    conn.stats()
    watch_exactly(conn, ["default", *sorted(tubes - {"default"})])
