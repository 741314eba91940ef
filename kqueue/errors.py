"""Every error kqueue raises, in one tree rooted at :class:`KQueueError`.

::

    KQueueError
    ├── ConfigurationError          bad settings; a missing optional extra
    │   └── NotSupportedError       settings valid, but not for this part of kqueue yet
    ├── ValidationError (ValueError) bad input, rejected before anything is written
    │   ├── InvalidJobTypeError     a job type name beanstalkd cannot take
    │   ├── PayloadError            a payload the codec cannot encode or decode
    │   └── JobTooBigError          an inline payload over the server's max job size
    ├── BrokerError                 beanstalkd failed or answered unexpectedly
    │   ├── BrokerConnectionError   cannot connect, or the connection dropped
    │   ├── BrokerTimeoutError      no reply within the command timeout
    │   ├── BrokerDrainingError     the server is in drain mode and refuses puts
    │   ├── BrokerServerError       OUT_OF_MEMORY, INTERNAL_ERROR
    │   └── BrokerProtocolError     a reply that does not fit the command
    ├── StoreError                  the bulk store failed (the cause is kept)
    │   ├── StoreConnectionError    the store cannot be reached
    │   │   └── StoreOutcomeUnknownError  a write sent, its reply lost: it may have committed
    │   │       └── ReplicationWaitError  written on the master, too few replicas confirmed
    │   └── RecordTooLargeError     a record over the store's own limit
    ├── JobNotFoundError            the job is not (or no longer) in beanstalkd
    ├── JobFailedError              the job whose result was asked for failed for good
    └── ResultTimeoutError          the job did not finish within the time asked

Errors of lower layers (sockets, redis-py, SQLAlchemy) are translated where those layers are
called and chained with ``raise ... from exc``, so ``except KQueueError`` catches them all.
"""

from __future__ import annotations


class KQueueError(Exception):
    """Root of every error raised by kqueue."""


class ConfigurationError(KQueueError):
    """A setting is invalid, or an optional extra is not installed."""


class NotSupportedError(ConfigurationError):
    """Valid settings that this part of kqueue cannot serve yet (e.g. the asyncio worker
    on several beanstalkd servers)."""


class ValidationError(KQueueError, ValueError):
    """Bad input: rejected before anything is written anywhere."""


class InvalidJobTypeError(ValidationError):
    """A job type name that cannot be a beanstalkd tube name."""


class PayloadError(ValidationError):
    """A payload the codec cannot encode, or a body it cannot decode."""


class JobTooBigError(ValidationError):
    """An inline job body larger than the beanstalkd server accepts."""


class BrokerError(KQueueError):
    """beanstalkd failed, or answered something the command does not allow."""


class BrokerConnectionError(BrokerError):
    """beanstalkd cannot be reached, or the connection dropped."""


class BrokerTimeoutError(BrokerError):
    """beanstalkd did not answer within the command timeout."""


class BrokerDrainingError(BrokerError):
    """beanstalkd is in drain mode: it refuses new jobs."""


class BrokerServerError(BrokerError):
    """beanstalkd reported an internal failure (OUT_OF_MEMORY, INTERNAL_ERROR)."""


class BrokerProtocolError(BrokerError):
    """A reply that does not fit the command sent (a bug here or in the server)."""


class StoreError(KQueueError):
    """The bulk store failed; the driver's exception is kept as ``__cause__``."""


class StoreConnectionError(StoreError):
    """The bulk store cannot be reached."""


class StoreOutcomeUnknownError(StoreConnectionError):
    """A write went out but its reply never came (a timeout): it may have committed.

    ``keys`` are the records of the write. add_job raises it with the key of the job: if the
    write did commit, the job is accepted and the recovery sweeper delivers it, so a caller
    that adds the job again makes a second copy; look the key up in the store first.
    """

    def __init__(self, message: str, *, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


class ReplicationWaitError(StoreOutcomeUnknownError):
    """A record write reached the Redis master, but fewer replicas than the store asks for
    (``replicas=``) confirmed it in time: the job is not accepted. The record stays on the
    master without a broker reference: if the master lives on, the recovery sweeper delivers
    the job all the same; if a failover loses the record, the job never runs.
    """


class RecordTooLargeError(StoreError):
    """A record larger than the store's own limit; nothing was written."""


class JobNotFoundError(KQueueError):
    """The job is not (or no longer) held by beanstalkd."""


class JobFailedError(KQueueError):
    """The job whose result was asked for failed for good (buried, or its failure kept).

    ``error_type``, ``error_message`` and ``traceback`` are those of its last failed attempt
    (empty when none was recorded).
    """

    def __init__(
        self,
        message: str,
        *,
        key: str,
        error_type: str = "",
        error_message: str = "",
        traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.key = key
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback


class ResultTimeoutError(KQueueError):
    """The job did not finish within the time given to wait for its result (it still may)."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key
