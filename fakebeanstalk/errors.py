"""Exceptions of fakebeanstalk.

The tree::

    FakeBeanstalkError
    ├── ServerStateError      the server is not in a state that allows the call
    │   └── ServerNotRunningError
    ├── AddressInUseError     the listening address could not be bound
    ├── BinlogError           the binlog directory cannot be used (missing, locked)
    └── ClockError            a clock was misused (moved backwards, shared wrongly)
"""

from __future__ import annotations

__all__ = [
    "AddressInUseError",
    "BinlogError",
    "ClockError",
    "FakeBeanstalkError",
    "ServerNotRunningError",
    "ServerStateError",
]


class FakeBeanstalkError(Exception):
    """Root of every exception raised by fakebeanstalk."""


class ServerStateError(FakeBeanstalkError):
    """The server is not in a state that allows this call (e.g. started twice)."""


class ServerNotRunningError(ServerStateError):
    """The call needs a running server (start() it first)."""


class AddressInUseError(FakeBeanstalkError):
    """The TCP port or unix socket path could not be bound."""


class BinlogError(FakeBeanstalkError):
    """The binlog directory cannot be used: missing, unwritable, or locked by another server."""


class ClockError(FakeBeanstalkError):
    """A clock was misused, e.g. moved backwards."""
