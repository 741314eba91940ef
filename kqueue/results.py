"""What became of a job: its status, its kept result, and the record of its failed attempts.

A job's status is read from where the job is: its record (buried, or waiting for a sweeper
when beanstalkd no longer holds it), beanstalkd (ready, delayed, reserved) and, once the
record is gone, the outcome kept for it (``keep_result=``)::

    pending   stored, ready in beanstalkd (or waiting for the sweeper to put it back)
    delayed   waiting out a delay: its own, or a retry's backoff
    running   reserved by a worker
    done      finished; its result is kept
    failed    failed for good (buried) and its outcome kept, while its record is gone
              (a dead letter purged): the failure stays readable until the result expires
    buried    a dead letter: failed for good, held until kicked or purged
    unknown   nothing holds it: finished without a kept result, expired, purged, or never
              added here

A failed attempt becomes an :class:`~kqueue.stores.base.AttemptFailure` (time, ``host:pid``,
exception type, message, the end of its traceback) appended to the record's history.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal, get_args

from kqueue.errors import (
    ConfigurationError,
    JobFailedError,
    JobNotFoundError,
    PayloadError,
    ResultTimeoutError,
)
from kqueue.serialization import CodecRegistry
from kqueue.stores.base import AttemptFailure, BrokerRef, RecordState, Store, StoredResult

__all__ = [
    "JOB_STATUSES",
    "MAX_MESSAGE_CHARS",
    "MAX_TRACEBACK_CHARS",
    "JobStatus",
    "attempt_failure",
    "failure_error",
    "job_status",
    "keep_failure",
    "keep_result",
    "record_failure",
    "require_store",
    "wait_for_result",
    "worker_name",
]

JobStatus = Literal["pending", "delayed", "running", "done", "failed", "buried", "unknown"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)

MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 4000
"""A traceback keeps its last this many characters: where the error was raised."""

BrokerState = Callable[[BrokerRef], "str | None"]
"""beanstalkd's state of the job a reference names, or None when it no longer holds it."""

_BROKER_STATUS: dict[str, JobStatus] = {
    "ready": "pending",
    "delayed": "delayed",
    "reserved": "running",
    "buried": "buried",
}


def worker_name() -> str:
    """This process as a failure history names it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def attempt_failure(exc: BaseException, attempt: int, *, at: float | None = None) -> AttemptFailure:
    """A failed attempt from its exception: never raises, texts bounded."""
    kind = type(exc)
    try:
        message = str(exc)
    except Exception:  # an exception whose __str__ itself fails
        message = "<unprintable>"
    try:
        trace = "".join(traceback.format_exception(exc))
    except Exception:
        trace = ""
    return AttemptFailure(
        at=time.time() if at is None else at,
        attempt=attempt,
        worker=worker_name(),
        error_type=f"{kind.__module__}.{kind.__qualname__}",
        message=message[:MAX_MESSAGE_CHARS],
        traceback=trace[-MAX_TRACEBACK_CHARS:],
    )


def keep_result(store: Store, codecs: CodecRegistry, key: str, value: Any, lifetime: float) -> None:
    """Keep a finished job's return value under its key for ``lifetime`` seconds.

    A value the codec cannot encode raises :class:`~kqueue.errors.PayloadError`.
    """
    try:
        codec, data = codecs.encode(value)
    except PayloadError as exc:
        raise PayloadError(f"the return value cannot be kept: {exc}") from exc
    now = time.time()
    store.put_result(key, StoredResult("done", data, codec, now, now + lifetime))


def keep_failure(store: Store, key: str, failure: AttemptFailure, lifetime: float) -> None:
    """Keep a job's final failure under its key, as its outcome, for ``lifetime`` seconds."""
    data = json.dumps(asdict(failure)).encode()
    store.put_result(key, StoredResult("failed", data, "json", failure.at, failure.at + lifetime))


def record_failure(
    store: Store,
    key: str,
    failure: AttemptFailure,
    *,
    attempts: int,
    error: str,
    buried: bool,
    keep_for: float | None,
) -> None:
    """Count a failed attempt and keep its failure on the record; once buried, also keep it
    as the outcome of a type that keeps results (for ``keep_for`` seconds; None: not kept)."""
    state: RecordState = "buried" if buried else "enqueued"
    store.record_failure(
        key, failure, attempts=attempts, last_error=error, state=state, now=failure.at
    )
    if buried and keep_for is not None:
        keep_failure(store, key, failure, keep_for)


def failure_error(key: str, failure: AttemptFailure | None, status: str) -> JobFailedError:
    """The error :func:`wait_for_result` raises for a job that failed for good."""
    if failure is None:
        return JobFailedError(f"job {key} is {status}", key=key)
    return JobFailedError(
        f"job {key} is {status} after attempt {failure.attempt}: "
        f"{failure.error_type}: {failure.message}",
        key=key,
        error_type=failure.error_type,
        error_message=failure.message,
        traceback=failure.traceback,
    )


def job_status(store: Store, key: str, broker_state: BrokerState) -> JobStatus:
    """The status of the job with this record key (see the module docstring)."""
    status = store.get_status_many([key]).get(key)
    if status is not None:
        if status.state == "buried":
            return "buried"
        ref = status.ref
        state = None if ref is None else broker_state(ref)
        if state is not None:
            return _BROKER_STATUS.get(state, "pending")
        if key in store.get_status_many([key]):
            return "pending"  # stored, not in beanstalkd: the sweeper puts it (back)
    kept = store.get_result(key, now=time.time())
    if kept is not None:
        return kept.outcome
    return "unknown"


def wait_for_result(
    store: Store,
    codecs: CodecRegistry,
    key: str,
    *,
    timeout: float | None,
    broker_state: BrokerState,
    poll: tuple[float, float] = (0.01, 0.5),
) -> Any:
    """The kept return value of the job ``key``, waiting up to ``timeout`` seconds (None:
    forever) for it to finish.

    Raises :class:`~kqueue.errors.JobFailedError` (its last failure) once the job is buried or
    failed, :class:`~kqueue.errors.ResultTimeoutError` when the time runs out first, and
    :class:`~kqueue.errors.JobNotFoundError` when nothing holds the job or its result.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pause, longest = poll
    while True:
        kept = store.get_result(key, now=time.time())
        if kept is not None and kept.outcome == "done":
            return codecs.decode(kept.codec, kept.payload)
        status = job_status(store, key, broker_state)
        if status in ("buried", "failed"):
            raise failure_error(key, _last_failure(store, key), status)
        if status == "done":
            continue  # finished between the two reads: its result is there now
        if status == "unknown":
            raise JobNotFoundError(
                f"job {key}: no record and no kept result (finished without keep_result, "
                "its result expired, purged, or never added)"
            )
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise ResultTimeoutError(f"job {key} still {status} after {timeout} s", key=key)
        time.sleep(pause if left is None else min(pause, left))
        pause = min(pause * 2, longest)


def _last_failure(store: Store, key: str) -> AttemptFailure | None:
    history = store.get_failures(key)
    if history:
        return history[-1]
    kept = store.get_result(key, now=time.time())
    if kept is not None and kept.outcome == "failed":
        try:
            return AttemptFailure(**json.loads(kept.payload))
        except (ValueError, TypeError):
            return None
    return None


def require_store(store: Store | None, what: str) -> Store:
    """The store, or ConfigurationError saying that ``what`` needs one."""
    if store is None:
        raise ConfigurationError(f"{what} needs a bulk store (KQueue(bulk_store=...))")
    return store
