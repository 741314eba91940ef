"""Injected faults: make the next commands close their connection or stall their reply."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from fakebeanstalk.clock import NS_PER_SECOND

__all__ = ["FOREVER", "Fault", "FaultMixin", "FaultPlan"]

FOREVER = 1 << 62
"""A stall end that never comes (nanoseconds)."""


class Fault:
    """One planned fault: ``close`` the connection, or ``stall`` it for a time."""

    __slots__ = ("action", "commands", "remaining", "seconds")

    def __init__(
        self, action: str, count: int, commands: frozenset[str] | None, seconds: float | None
    ) -> None:
        """Apply ``action`` to the next ``count`` commands named in ``commands`` (or any)."""
        self.action = action
        self.remaining = count
        self.commands = commands
        self.seconds = seconds

    def matches(self, op: str | None) -> bool:
        """Whether this fault applies to a command of that name (None: unparsable)."""
        return self.remaining > 0 and (self.commands is None or op in self.commands)

    def stall_until(self, now: int) -> int:
        """When a stall that starts at ``now`` ends (FOREVER: until the client leaves)."""
        if self.seconds is None:
            return FOREVER
        return now + round(self.seconds * NS_PER_SECOND)


class FaultPlan:
    """The faults waiting for the next commands, shared by every connection of a server."""

    def __init__(self) -> None:
        """No fault planned."""
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.stalled_once = False
        """Whether a stall was ever applied (lets the server skip looking for stalls)."""

    def add(
        self,
        action: str,
        count: int,
        commands: Iterable[str] | None = None,
        seconds: float | None = None,
    ) -> None:
        """Plan ``action`` for the next ``count`` matching commands."""
        if action not in ("close", "stall"):
            raise ValueError(f"unknown fault action {action!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        names = None if commands is None else frozenset(commands)
        with self._lock:
            self._faults.append(Fault(action, count, names, seconds))

    def clear(self) -> None:
        """Cancel every planned fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        """How many commands are still to be faulted."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def take(self, op: str | None) -> Fault | None:
        """The fault for the command about to run, if any (and count it as used)."""
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.matches(op):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    if fault.action == "stall":
                        self.stalled_once = True
                    return fault
        return None


class FaultMixin:
    """The fault-planning methods of the server (the plan is applied by its sessions)."""

    faults: FaultPlan

    def fail_next(self, count: int = 1, *, commands: Iterable[str] | None = None) -> None:
        """Close the connection instead of running the next ``count`` commands.

        ``commands`` restricts the fault to those command names (e.g. ``{"reserve"}``).
        """
        self.faults.add("close", count, commands)

    def stall_next(
        self,
        count: int = 1,
        *,
        seconds: float | None = None,
        commands: Iterable[str] | None = None,
    ) -> None:
        """Hold the next ``count`` commands (and their connection) for ``seconds`` of the
        server's clock before running them; ``None`` holds them until the client leaves."""
        self.faults.add("stall", count, commands, seconds)

    def clear_faults(self) -> None:
        """Cancel the faults not yet applied."""
        self.faults.clear()
