"""Time sources of the fake server: the system's monotonic clock, or a clock tests move.

Times are integer nanoseconds, like beanstalkd's. A :class:`FakeClock` only moves when
:meth:`FakeClock.advance` is called; servers that use it subscribe to it, so that an advance
fires, in time order, every delay, TTR expiry, safety margin, reserve timeout and pause
expiry that falls inside the jump, and returns once the servers have processed them.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from fakebeanstalk.errors import ClockError

__all__ = ["Clock", "FakeClock", "SystemClock", "TimeObserver", "wall_offset"]

NS_PER_SECOND = 1_000_000_000


class Clock(Protocol):
    """Anything that tells the time in integer nanoseconds (monotonic)."""

    def now_ns(self) -> int:
        """The current time in nanoseconds; never goes backwards."""
        ...


class TimeObserver(Protocol):
    """Something driven by a :class:`FakeClock` (a server, or a bare state in unit tests)."""

    def next_deadline(self) -> int | None:
        """The earliest pending timer in nanoseconds, or None when nothing is scheduled."""
        ...

    def time_changed(self) -> None:
        """Process every timer that is due at the clock's new time; return when done."""
        ...


def wall_offset(clock: Clock) -> int:
    """What to add to ``clock``'s times to get wall-clock nanoseconds since the epoch.

    beanstalkd's binlog holds wall-clock times (creation, delay deadlines); a clock may say
    where its time stands on the wall clock with a ``wall_ns()`` method, else its time is
    taken to run alongside the system's wall clock from now on.
    """
    wall_ns = getattr(clock, "wall_ns", None)
    now = clock.now_ns()
    wall = wall_ns() if callable(wall_ns) else time.time_ns()
    return int(wall) - now


class SystemClock:
    """The real monotonic clock (``time.monotonic_ns``)."""

    def now_ns(self) -> int:
        """The current monotonic time in nanoseconds."""
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        """The wall-clock time (``time.time_ns``), for the times a binlog stores."""
        return time.time_ns()

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that moves only when told to, for deterministic timing tests.

    >>> clock = FakeClock()
    >>> clock.advance(1.5)
    >>> clock.now_ns()
    1500000000
    """

    def __init__(self, start: float = 0.0) -> None:
        """Start at ``start`` seconds."""
        self._now = round(start * NS_PER_SECOND)
        # Fake time runs alongside a wall clock fixed at creation, so that binlog times
        # (and so delay deadlines across an in-process restart) follow the fake clock.
        self._wall_base = time.time_ns() - self._now
        self._observers: list[TimeObserver] = []
        self._lock = threading.RLock()

    def now_ns(self) -> int:
        """The fake current time in nanoseconds."""
        return self._now

    def time(self) -> float:
        """The fake current time in seconds."""
        return self._now / NS_PER_SECOND

    def wall_ns(self) -> int:
        """The wall-clock time that the fake time stands for (fixed at creation + now)."""
        return self._wall_base + self._now

    def subscribe(self, observer: TimeObserver) -> None:
        """Have ``observer`` driven by this clock's advances."""
        with self._lock:
            if observer not in self._observers:
                self._observers.append(observer)

    def unsubscribe(self, observer: TimeObserver) -> None:
        """Stop driving ``observer``; unknown observers are ignored."""
        with self._lock:
            if observer in self._observers:
                self._observers.remove(observer)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer due on the way, in order.

        Each subscribed server has processed the new time (and written its replies to its
        sockets) when this returns, so a test can assert right after.
        """
        if seconds < 0:
            raise ClockError(f"a clock cannot go backwards ({seconds} s)")
        with self._lock:
            target = self._now + round(seconds * NS_PER_SECOND)
            self._step_to(target)

    def _step_to(self, target: int) -> None:
        # Stop at every intermediate deadline, as real time would pass through it: a job
        # that becomes ready at t=1 must be reservable before a reserve timeout at t=2 fires.
        observers = list(self._observers)
        processed_at: int | None = None
        while True:
            deadlines = [d for d in (o.next_deadline() for o in observers) if d is not None]
            nearest = min(deadlines, default=None)
            if nearest is None or nearest > target:
                break
            step = max(self._now, nearest)
            if step == processed_at:
                break  # what is still due at this instant was left pending on purpose
            self._now = step
            for observer in observers:
                observer.time_changed()
            processed_at = step
        self._now = target
        for observer in observers:
            observer.time_changed()

    def __repr__(self) -> str:
        return f"FakeClock(now={self.time()!r})"
