"""Kick: buried jobs (dead letters) back to ready, each with a fresh retry budget.

A kicked job's record starts its attempts again at 0, in state ``enqueued`` (so recovery
would restore it ready, not buried). :class:`~kqueue.admin.Admin` decides which servers
and how many; this module walks one server's tube.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.serialization import decode_body
from kqueue.stores.base import Store

__all__ = ["fresh_budget", "kick_tube"]


def fresh_budget(store: Store | None, raw: bytes) -> None:
    """Start the attempts of the kicked job with body ``raw`` again at 0 (an inline job, or
    one without a store, has no record to reset)."""
    body = decode_body(raw)
    if body is not None and body.mode != "i" and store is not None:
        store.record_attempt(
            body.key, attempts=0, last_error=None, state="enqueued", now=time.time()
        )


def kick_tube(
    conn: BeanstalkConnection,
    tube: str,
    store: Store | None,
    count: int | None,
    progress: Callable[[], None] | None,
) -> int:
    """Kick up to ``count`` (None: all) of ``tube``'s buried jobs on ``conn``, oldest first,
    each with :func:`fresh_budget`; how many. ``progress`` is called once per job kicked."""
    kicked = 0
    seen: set[int] = set()
    conn.use(tube)
    while count is None or kicked < count:
        found = conn.peek_buried()
        # A job a worker buried again meanwhile is not kicked twice in one call.
        if found is None or found.id in seen or not conn.kick_job(found.id):
            break
        seen.add(found.id)
        kicked += 1
        fresh_budget(store, found.body)
        if progress is not None:
            progress()
    return kicked
