"""kqueue: a reliable real-time job queue on beanstalkd.

Payloads are written durably to a bulk store before beanstalkd sees a reference; a recovery
sweeper re-enqueues what beanstalkd loses; ``fakebeanstalk`` makes tests of timing and failure
deterministic. Start with :class:`KQueue`.
"""

from kqueue.admin import QueueStats
from kqueue.config import QueueConfig
from kqueue.errors import (
    BrokerConnectionError,
    BrokerDrainingError,
    BrokerError,
    BrokerProtocolError,
    BrokerServerError,
    BrokerTimeoutError,
    ConfigurationError,
    InvalidJobTypeError,
    JobFailedError,
    JobNotFoundError,
    JobTooBigError,
    KQueueError,
    NotSupportedError,
    PayloadError,
    RecordTooLargeError,
    ReplicationWaitError,
    ResultTimeoutError,
    StoreConnectionError,
    StoreError,
    StoreOutcomeUnknownError,
    ValidationError,
)
from kqueue.job import PRIO_BULK, PRIO_HIGH, PRIO_LOW, PRIO_NORMAL, PRIO_URGENT, Job
from kqueue.middleware import (
    AutoTouch,
    Counters,
    Fail,
    Failure,
    Hooks,
    Middleware,
    Retries,
    SkipJob,
)
from kqueue.producer import NOT_SCHEDULED
from kqueue.queue import KQueue
from kqueue.results import JobStatus
from kqueue.retry import RetryPolicy
from kqueue.schedule import Schedule
from kqueue.scheduler import Scheduler
from kqueue.serialization import Codec, JsonCodec, RawCodec
from kqueue.stores.base import AttemptFailure
from kqueue.sweeper import RecoverySweeper, SweepReport
from kqueue.tasks import Task, TaskHandle
from kqueue.unique import UniqueFor
from kqueue.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "NOT_SCHEDULED",
    "PRIO_BULK",
    "PRIO_HIGH",
    "PRIO_LOW",
    "PRIO_NORMAL",
    "PRIO_URGENT",
    "AttemptFailure",
    "AutoTouch",
    "BrokerConnectionError",
    "BrokerDrainingError",
    "BrokerError",
    "BrokerProtocolError",
    "BrokerServerError",
    "BrokerTimeoutError",
    "Codec",
    "ConfigurationError",
    "Counters",
    "Fail",
    "Failure",
    "Hooks",
    "InvalidJobTypeError",
    "Job",
    "JobFailedError",
    "JobNotFoundError",
    "JobStatus",
    "JobTooBigError",
    "JsonCodec",
    "KQueue",
    "KQueueError",
    "Middleware",
    "NotSupportedError",
    "PayloadError",
    "QueueConfig",
    "QueueStats",
    "RawCodec",
    "RecordTooLargeError",
    "RecoverySweeper",
    "ReplicationWaitError",
    "ResultTimeoutError",
    "Retries",
    "RetryPolicy",
    "Schedule",
    "Scheduler",
    "SkipJob",
    "StoreConnectionError",
    "StoreError",
    "StoreOutcomeUnknownError",
    "SweepReport",
    "Task",
    "TaskHandle",
    "UniqueFor",
    "ValidationError",
    "Worker",
    "__version__",
]
