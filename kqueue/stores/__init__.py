"""Bulk stores: where job payloads live durably before beanstalkd sees a reference.

``MemoryStore`` needs nothing beyond the standard library. ``RedisStore`` and ``SQLStore`` are
loaded on first access, and their drivers only when a store is created, so ``import
kqueue.stores`` works without redis-py or SQLAlchemy installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kqueue.stores.base import BrokerRef, JobRecord, RecordState, Store, StoreBase, iter_records
from kqueue.stores.memory import MemoryStore
from kqueue.stores.registry import accepted_schemes, open_store, register_scheme
from kqueue.stores.url import redact_url

if TYPE_CHECKING:
    from kqueue.stores.redis import RedisStore
    from kqueue.stores.sql import SQLStore

__all__ = [
    "BrokerRef",
    "JobRecord",
    "MemoryStore",
    "RecordState",
    "RedisStore",
    "SQLStore",
    "Store",
    "StoreBase",
    "accepted_schemes",
    "iter_records",
    "open_store",
    "redact_url",
    "register_scheme",
]

_LAZY = {"RedisStore": "kqueue.stores.redis", "SQLStore": "kqueue.stores.sql"}


def __getattr__(name: str) -> Any:
    """Load ``RedisStore`` / ``SQLStore`` on first access (their modules import no driver)."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
