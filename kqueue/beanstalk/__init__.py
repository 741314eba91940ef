"""beanstalkd's protocol for kqueue: wire parsing, one command table, connection, pipeline.

- :mod:`~kqueue.beanstalk.wire`: replies and stats parsed from bytes (no I/O);
- :mod:`~kqueue.beanstalk.commands`: every command written once (frame, success replies,
  converter), usable at once or in a pipeline;
- :mod:`~kqueue.beanstalk.connection`: :class:`BeanstalkConnection`, one socket;
- :mod:`~kqueue.beanstalk.pipeline`: :class:`Pipeline`, many commands in one write.
"""

from kqueue.beanstalk.commands import Call, Command, DeadlineSoon
from kqueue.beanstalk.connection import BeanstalkConnection, SocketFactory, Wakeup
from kqueue.beanstalk.pipeline import Pending, Pipeline, delete_jobs, reserve_ready
from kqueue.beanstalk.wire import JobStats, Reply, ReservedJob, ServerStats, TubeStats

__all__ = [
    "BeanstalkConnection",
    "Call",
    "Command",
    "DeadlineSoon",
    "JobStats",
    "Pending",
    "Pipeline",
    "Reply",
    "ReservedJob",
    "ServerStats",
    "SocketFactory",
    "TubeStats",
    "Wakeup",
    "delete_jobs",
    "reserve_ready",
]
