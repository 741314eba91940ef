"""Retries: a failed job is released with a backoff delay, then buried after its budget."""

from __future__ import annotations

from kqueue.middleware.base import Fail, Failure, Middleware
from kqueue.retry import RetryPolicy


class Retries(Middleware):
    """Decides a failed job's outcome from its retry policy (the handler's, else ``policy``).

    A job is buried at once when its handler raised :class:`~kqueue.middleware.base.Fail`,
    or when the policy's ``retry_when`` filter refuses the exception; else it is released
    with the policy's delay until ``max_attempts`` attempts have failed, then buried.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def decide_failure(self, failure: Failure) -> None:
        policy = failure.policy or self.policy
        error = failure.error
        attempts = failure.job.attempts
        if isinstance(error, Fail):
            failure.bury, failure.reason = True, "failed on purpose (Fail)"
        elif policy.retry_when is not None and not policy.retry_when(error):
            failure.bury, failure.reason = True, "not retried (retry_when refused it)"
        elif policy.should_bury(attempts):
            failure.bury, failure.reason = True, f"retry budget spent ({attempts} attempts)"
        else:
            failure.bury, failure.delay = False, policy.delay_for(attempts)
