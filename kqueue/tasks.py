"""Typed tasks: a function registered as the handler of a job type, added by calling it.

::

    @queue.task("email.send", priority=PRIO_HIGH, ttr=30, keep_result=3600)
    def send_email(to: str, subject: str) -> str:
        ...

    handle = send_email.add(to="ada@example.com", subject="hi")    # checked by mypy
    send_email.add(to="ada@example.com", subject="later", delay=60)
    handle.result(timeout=10)

A task's arguments travel as one payload: a JSON object (through the queue's codec) of the
arguments by name, checked against the function's signature before anything is written. A
worker binds the payload to the signature again before the call: a payload that does not fit
(written by hand, or by an older version of the function) fails at once with the reason and
is buried, never retried. Arguments are passed by name: ``delay`` and ``at`` belong to
``add`` (so a task function may not take parameters of those names, nor positional-only or
``*args`` ones).
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from kqueue import job as jobmod
from kqueue.errors import ConfigurationError, JobNotFoundError, ValidationError
from kqueue.job import Job
from kqueue.middleware.base import Fail
from kqueue.results import JobStatus
from kqueue.retry import RetryPolicy
from kqueue.stores.base import AttemptFailure, UniqueClaim
from kqueue.unique import UniqueFor, UniqueLifetime, unique_claim

if TYPE_CHECKING:
    from kqueue.queue import KQueue

__all__ = ["ADD_OPTIONS", "Task", "TaskHandle", "default_job_type"]

P = ParamSpec("P")
R = TypeVar("R")

ADD_OPTIONS = ("delay", "at", "unique_key", "unique_for")
"""Keyword arguments ``Task.add`` takes for itself: no task parameter may be named so."""

_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9+/;.$_()-]")


def default_job_type(func: Callable[..., Any]) -> str:
    """A stable job type for a function: its module and qualified name, with every character
    a tube name cannot hold replaced by ``_`` (``myapp.jobs.send_email``)."""
    module = getattr(func, "__module__", None) or "unknown"
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", "task")
    return _NOT_IN_NAMES.sub("_", f"{module}.{name}")


def _check_signature(func: Callable[..., Any], signature: inspect.Signature) -> None:
    """Only parameters that can be given by name, none named like an add option."""
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL):
            raise ValidationError(
                f"task {func.__qualname__} takes {parameter} positionally only: a task's "
                "arguments travel by name"
            )
        if parameter.name in ADD_OPTIONS:
            raise ValidationError(
                f"task {func.__qualname__} has a parameter named {parameter.name!r}, which "
                f"{'/'.join(ADD_OPTIONS)} of Task.add take for themselves: rename it"
            )


_BY_NAME = (
    "Task.add takes the task's arguments by name (its own first are delay, at, unique_key, "
    "unique_for)"
)


def _delay_of(delay: float | timedelta, at: datetime | None) -> float:
    """Seconds from now: ``delay``, or until ``at`` (naive: local time; past: now)."""
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ValidationError(f"delay must be seconds or a timedelta, not {delay!r}: {_BY_NAME}")
    if at is not None:
        if not isinstance(at, datetime):
            raise ValidationError(f"at must be a datetime, not {at!r}: {_BY_NAME}")
        if delay:
            raise ValidationError("give add either delay or at, not both")
        return max(0.0, at.timestamp() - time.time())
    return delay


class TaskHandle(Generic[R]):
    """A job added by a task: its record ``key`` (stable across retries and recovery) and
    beanstalkd ``id`` (0 when it was accepted while beanstalkd was down)."""

    def __init__(self, task: Task[Any, R], key: str, job_id: int) -> None:
        self.task = task
        self.key = key
        self.id = job_id

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task.job_type} key={self.key} id={self.id}>"

    def status(self) -> JobStatus:
        """pending, delayed, running, done, failed, buried or unknown (see
        :mod:`kqueue.results`); without a store, beanstalkd's view of the id alone."""
        queue = self.task.queue
        if queue.store is not None:
            return queue.job_status(self.key)
        try:
            state = queue.admin.job_stats(self.id).get("state", "")
        except JobNotFoundError:
            return "unknown"
        statuses: dict[str, JobStatus] = {"delayed": "delayed", "reserved": "running"}
        return "buried" if state == "buried" else statuses.get(state, "pending")

    def result(self, timeout: float | None = None) -> R:
        """The function's return value, waiting up to ``timeout`` seconds (None: forever).

        Raises :class:`~kqueue.errors.JobFailedError` if the job failed for good,
        :class:`~kqueue.errors.ResultTimeoutError` if it did not finish in time, and
        :class:`~kqueue.errors.ConfigurationError` if the task keeps no results.
        """
        if self.task.keep_result is None:
            raise ConfigurationError(
                f"task {self.task.job_type} keeps no result: give it keep_result=SECONDS"
            )
        return cast("R", self.task.queue.job_result(self.key, timeout=timeout))

    def failures(self) -> list[AttemptFailure]:
        """The job's failed attempts so far, oldest first (the last ten)."""
        return self.task.queue.job_failures(self.key)


class Task(Generic[P, R]):
    """A function registered as the handler of ``job_type`` on ``queue`` (made by
    :meth:`kqueue.KQueue.task`). Calling the task runs the function here, at once."""

    def __init__(
        self,
        queue: KQueue,
        func: Callable[P, R],
        *,
        job_type: str | None = None,
        priority: int = jobmod.PRIO_NORMAL,
        ttr: int = 30,
        retry: RetryPolicy | None = None,
        keep_result: float | timedelta | None = None,
        auto_touch: bool = False,
    ) -> None:
        if not callable(func):
            raise ValidationError(f"a task wraps a function, not {type(func).__name__}")
        self.queue = queue
        self.func = func
        self.signature = inspect.signature(func)
        _check_signature(func, self.signature)
        self.job_type = default_job_type(func) if job_type is None else job_type
        self.priority = priority
        self.ttr = ttr
        if isinstance(keep_result, timedelta):
            keep_result = keep_result.total_seconds()
        self.keep_result = keep_result
        queue.producer.options(self.job_type, priority, 0, ttr)  # bad options fail here
        queue.add_handler(
            self.job_type, self.run_job, retry=retry, auto_touch=auto_touch, keep_result=keep_result
        )
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<Task {self.job_type} {self.func.__qualname__}{self.signature}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no queue involved)."""
        return self.func(*args, **kwargs)

    def add(
        self,
        delay: float | timedelta = 0,
        at: datetime | None = None,
        unique_key: str | None = None,
        unique_for: UniqueLifetime = UniqueFor.FINISH,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> TaskHandle[R]:
        """Add a job that calls the function with these arguments (by name), after ``delay``
        seconds or at the datetime ``at``; its handle.

        ``unique_key`` / ``unique_for`` as in :meth:`KQueue.add_job`: while a job holding the
        key waits, nothing is added and the handle is that job's.

        Arguments that do not fit the signature, or that the codec cannot encode, raise
        :class:`~kqueue.errors.ValidationError` and nothing is added.
        """
        wait = _delay_of(delay, at)  # first: a positional argument meant for the task lands here
        claims: list[UniqueClaim | None] | None = None
        if unique_key is not None:
            claims = [unique_claim(unique_key, unique_for, now=time.time())]
        return self._add([self.payload(args, kwargs)], wait, claims)[0]

    def add_many(
        self,
        calls: Iterable[Mapping[str, Any]],
        *,
        delay: float | timedelta = 0,
        at: datetime | None = None,
    ) -> list[TaskHandle[R]]:
        """Add one job per mapping of arguments by name, in one batch; their handles.

        Every mapping is checked first: one that does not fit raises
        :class:`~kqueue.errors.ValidationError` naming its index, and nothing is added.
        """
        if isinstance(calls, Mapping | str | bytes):
            raise ValidationError("add_many takes an iterable of argument mappings")
        wait = _delay_of(delay, at)
        payloads = []
        for index, call in enumerate(calls):
            if not isinstance(call, Mapping):
                raise ValidationError(f"call {index}: not a mapping of arguments; nothing added")
            try:
                payloads.append(self.payload((), dict(call)))
            except ValidationError as exc:
                raise ValidationError(f"call {index}: {exc}") from exc
        return self._add(payloads, wait)

    def handle(self, key: str) -> TaskHandle[R]:
        """The handle of a job of this task by its record key (e.g. kept by a web request)."""
        return TaskHandle(self, key, 0)

    def payload(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments as they travel: by name, after checking them against the
        signature (ValidationError when they do not fit)."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValidationError(
                f"{self.func.__qualname__}{self.signature}: {exc}; nothing was added"
            ) from exc
        payload: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.signature.parameters[name].kind
            payload.update(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        return payload

    def _add(
        self,
        payloads: list[dict[str, Any]],
        delay: float,
        claims: list[UniqueClaim | None] | None = None,
    ) -> list[TaskHandle[R]]:
        producer = self.queue.producer
        options = producer.options(self.job_type, self.priority, delay, self.ttr)
        added = producer.add_keyed(options, producer.encode_all(payloads), claims)
        return [TaskHandle(self, key, job_id) for key, job_id in added]

    def run_job(self, job: Job) -> R:
        """The handler: bind the payload to the signature and call the function. A payload
        that does not fit raises :class:`~kqueue.Fail` (buried at once, with the reason)."""
        data = job.data
        if not isinstance(data, dict) or not all(isinstance(name, str) for name in data):
            raise Fail(
                f"task {self.job_type}: the payload is a {type(data).__name__}, not an object "
                "of arguments by name"
            )
        try:
            bound = self.signature.bind(**data)
        except TypeError as exc:
            raise Fail(
                f"task {self.job_type}: arguments {sorted(data)} do not fit "
                f"{self.func.__qualname__}{self.signature}: {exc}"
            ) from exc
        return self.func(*bound.args, **bound.kwargs)
