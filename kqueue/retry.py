"""Retry policy: how long a failed job waits before its next attempt, and when to give up."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from kqueue.errors import ValidationError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, and a budget of attempts.

    After attempt ``n`` fails, the job waits ``min(max_delay, base_delay * 2**(n-1))`` seconds,
    of which the upper half is randomised when ``jitter`` is on (so retries of many jobs that
    failed together spread out). When ``max_attempts`` attempts have failed, the job is buried:
    the dead letter, kept with its last error until it is kicked or purged.
    beanstalkd counts delays in whole seconds, so delays are rounded up.

    ``retry_when`` filters the exceptions worth a retry: a job whose handler raised one it
    returns False for is buried at once (e.g. ``lambda exc: isinstance(exc, OSError)``).
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 300.0
    jitter: bool = True
    retry_when: Callable[[BaseException], bool] | None = field(default=None, compare=False)
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValidationError("max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValidationError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValidationError(
                f"need 0 <= base_delay <= max_delay, got {self.base_delay} and {self.max_delay}"
            )

    def should_bury(self, attempts: int) -> bool:
        """True when ``attempts`` failed attempts exhaust the budget."""
        return attempts >= self.max_attempts

    def delay_for(self, attempts: int) -> int:
        """Whole seconds to wait after ``attempts`` failed attempts (1 = the first failure)."""
        exponent = min(max(attempts - 1, 0), 64)
        delay = min(self.max_delay, self.base_delay * 2.0**exponent)
        if self.jitter:
            delay = delay / 2 + self._random.uniform(0, delay / 2)
        return math.ceil(delay)
