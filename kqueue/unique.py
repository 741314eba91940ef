"""Unique jobs: how long a job holds its unique key, and the checked claim of one add.

The store decides who holds a key (:meth:`kqueue.stores.base.Store.put_unique`); this module
turns what an application passes (``unique_key=``, ``unique_for=``) into that claim, so the
producer, the scheduler and the typed tasks all speak one language.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from kqueue.errors import ValidationError
from kqueue.stores.base import MAX_UNIQUE_KEY_LENGTH, UniqueClaim

__all__ = ["UniqueFor", "UniqueKeys", "UniqueLifetime", "unique_claim", "unique_keys_of"]


class UniqueFor(enum.Enum):
    """How long a job's unique key stays held (``unique_for=``); a number of seconds or a
    timedelta instead holds it that long after the add, whatever happens to the job."""

    FINISH = "finish"
    """Until the job finishes: its handler succeeded, it was purged or deleted (a dead
    letter still holds it until it is purged or kicked and done)."""
    START = "start"
    """Until a worker starts the job's handler: a later add waits behind no running job."""


UniqueLifetime = UniqueFor | float | timedelta
"""What ``unique_for=`` takes."""

UniqueKeys = Callable[[Any], str | None] | Sequence[str | None]
"""What add_jobs' ``unique_key=`` takes: a function of the payload, or a key per payload."""


def unique_claim(unique_key: str, unique_for: UniqueLifetime, *, now: float) -> UniqueClaim:
    """The checked claim of one add, or ValidationError (nothing is written)."""
    if not isinstance(unique_key, str) or not 0 < len(unique_key) <= MAX_UNIQUE_KEY_LENGTH:
        raise ValidationError(
            f"unique_key must be a string of 1 to {MAX_UNIQUE_KEY_LENGTH} characters, "
            f"not {unique_key!r}"
        )
    if "\x00" in unique_key:
        raise ValidationError("unique_key must not hold a NUL character")
    if isinstance(unique_for, UniqueFor):
        return UniqueClaim(unique_key, unique_for.value)
    seconds = unique_for.total_seconds() if isinstance(unique_for, timedelta) else unique_for
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValidationError(
            f"unique_for must be UniqueFor.FINISH, UniqueFor.START or a positive number of "
            f"seconds (or a timedelta), not {unique_for!r}"
        )
    return UniqueClaim(unique_key, "expiry", now + float(seconds))


def unique_keys_of(unique_key: UniqueKeys, payloads: list[Any]) -> list[str | None]:
    """The unique key (or None) of each payload of an add_jobs, or ValidationError."""
    if callable(unique_key):
        return [unique_key(payload) for payload in payloads]
    if isinstance(unique_key, str) or len(unique_key) != len(payloads):
        raise ValidationError(
            "add_jobs' unique_key is a function of the payload or one key (or None) per "
            "payload (nothing was added)"
        )
    return list(unique_key)
