"""An application of typed tasks for the command-line tests: ``kqueue worker
tests.cli.task_app:queue --store URL``. The job types are the functions' default names."""

from __future__ import annotations

from kqueue import KQueue, RetryPolicy

# The worker's --store replaces this placeholder store (an in-memory SQLite database).
queue = KQueue(bulk_store="sqlite://", retry=RetryPolicy(max_attempts=1))


@queue.task(keep_result=600)
def greet(name: str, punctuation: str = "!") -> str:
    """Returns a greeting: its result is kept."""
    return f"hello {name}{punctuation}"


@queue.task(keep_result=600)
def divide(a: int, b: int) -> float:
    """Fails for b == 0: buried at once (one attempt)."""
    return a / b
