"""fakebeanstalk: an in-process beanstalkd 1.12 for tests, byte-identical on the wire.

Start one with :class:`FakeBeanstalkServer` (a context manager), move its time with a
:class:`FakeClock`, or use the ``fakebeanstalk`` pytest fixture. It never imports kqueue.
"""

from __future__ import annotations

from fakebeanstalk.clock import Clock, FakeClock, SystemClock
from fakebeanstalk.errors import (
    AddressInUseError,
    BinlogError,
    ClockError,
    FakeBeanstalkError,
    ServerNotRunningError,
    ServerStateError,
)
from fakebeanstalk.inspection import JobInfo
from fakebeanstalk.server import FakeBeanstalkServer

__all__ = [
    "AddressInUseError",
    "BinlogError",
    "Clock",
    "ClockError",
    "FakeBeanstalkError",
    "FakeBeanstalkServer",
    "FakeClock",
    "JobInfo",
    "ServerNotRunningError",
    "ServerStateError",
    "SystemClock",
]

__version__ = "0.1.0"
