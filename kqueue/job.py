"""Jobs, priorities and job type names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kqueue.errors import InvalidJobTypeError, ValidationError
from kqueue.keys import key_time

if TYPE_CHECKING:
    from kqueue.beanstalk.connection import BeanstalkConnection

PRIO_URGENT = 8000
PRIO_HIGH = 9000
PRIO_NORMAL = 10000
PRIO_LOW = 11000
PRIO_BULK = 12000

MAX_DELAY = 2**32 - 1
MAX_TUBE_NAME_BYTES = 200
DEFAULT_TUBE_PREFIX = "kq-"
SUSPEND_SECONDS = 10 * 365 * 24 * 3600
"""How long a suspension pauses a tube: ten years, i.e. until resume()."""

# beanstalkd's tube name alphabet: A-Z a-z 0-9 - + / ; . $ _ ( ), not starting with '-'.
_TUBE_NAME = re.compile(r"[A-Za-z0-9+/;.$_()-]+")

JobOutcome = Literal["pending", "deleted", "released", "buried"]


def validate_tube_prefix(prefix: str) -> str:
    """Check a namespace prefix for tube names; returns it unchanged."""
    if not isinstance(prefix, str):
        raise InvalidJobTypeError(f"tube prefix must be a str, not {type(prefix).__name__}")
    if prefix and (not _TUBE_NAME.fullmatch(prefix) or prefix.startswith("-")):
        raise InvalidJobTypeError(
            f"tube prefix {prefix!r} may only use A-Z a-z 0-9 - + / ; . $ _ ( ) "
            "and must not start with '-'"
        )
    if len(prefix) >= MAX_TUBE_NAME_BYTES:
        raise InvalidJobTypeError(f"tube prefix {prefix!r} leaves no room for a job type name")
    return prefix


def tube_for(job_type: str, prefix: str) -> str:
    """The beanstalkd tube of a job type, after checking the name against beanstalkd's rules.

    Names are checked as bytes: only ASCII letters, digits and ``-+/;.$_()`` are allowed, the
    tube may not start with ``-``, and prefix plus name must fit in 200 bytes.
    """
    if not isinstance(job_type, str):
        raise InvalidJobTypeError(f"job type must be a str, not {type(job_type).__name__}")
    if not job_type:
        raise InvalidJobTypeError("job type must not be empty")
    if not _TUBE_NAME.fullmatch(job_type):
        raise InvalidJobTypeError(
            f"job type {job_type!r} may only use A-Z a-z 0-9 - + / ; . $ _ ( ) (ASCII)"
        )
    tube = prefix + job_type
    if tube.startswith("-"):
        raise InvalidJobTypeError(f"job type {job_type!r} makes a tube name starting with '-'")
    if len(tube) > MAX_TUBE_NAME_BYTES:
        room = MAX_TUBE_NAME_BYTES - len(prefix)
        raise InvalidJobTypeError(
            f"job type {job_type[:40]!r}... is {len(job_type)} bytes; at most {room} fit "
            f"after the prefix {prefix!r}"
        )
    return tube


def check_u32(name: str, value: object, *, minimum: int = 0) -> int:
    """Validate an integer option that beanstalkd reads as an unsigned 32-bit number."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an int, not {type(value).__name__}")
    if not minimum <= value <= 2**32 - 1:
        raise ValidationError(f"{name} must be between {minimum} and {2**32 - 1}, got {value}")
    return value


def check_delay(value: object) -> int:
    """Validate a delay in seconds (int or float, rounded up to whole seconds)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"delay must be a number of seconds, not {type(value).__name__}")
    if value != value or value < 0 or value > MAX_DELAY:
        raise ValidationError(f"delay must be between 0 and {MAX_DELAY} seconds, got {value}")
    whole = int(value)
    return whole + 1 if value > whole else whole


@dataclass(eq=False)
class Job:
    """A reserved job handed to a handler.

    ``data`` is the decoded payload. ``id`` is the beanstalkd job id, ``key`` the stable record
    key (the same across recovery re-enqueues), ``attempts`` counts this run (1 on the first).
    ``connection`` is the beanstalkd connection that holds the job reserved.
    """

    id: int
    job_type: str
    data: Any
    priority: int
    ttr: int
    key: str
    outcome: JobOutcome = "pending"
    stored: bool = False
    connection: BeanstalkConnection | None = field(default=None, repr=False)
    known_attempts: int = field(default=1, repr=False)

    @property
    def attempts(self) -> int:
        """This run's attempt number: 1 on the first run, 2 on the first retry, ...

        Failed attempts are counted on a stored job's record (by beanstalkd's releases for an
        inline job); earlier reserves that never finished (the TTR ran out, the worker died)
        count too, from beanstalkd's counters of the job.
        """
        return self.known_attempts

    @property
    def enqueued_at(self) -> float:
        """When the job was first added (Unix seconds, to the millisecond; from its key)."""
        return key_time(self.key)

    @property
    def finished(self) -> bool:
        """True once the job was deleted, released or buried."""
        return self.outcome != "pending"

    def touch(self) -> bool:
        """Give the job its full TTR again; False if it is no longer reserved here."""
        if self.connection is None:
            return False
        return self.connection.touch(self.id)
