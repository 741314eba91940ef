"""The ``store`` fixture: one instance of every store kind, on real services."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kqueue.stores import MemoryStore, Store

STORE_KINDS = ["memory", "redis", "sqlite", "sqlite-memory", "postgres", "mysql"]
"""The store kinds of the queue suites (tests/integration)."""
HA_KINDS = ["redis-sentinel", "redis-cluster"]
"""Redis beyond one server: the store contract runs on them too (the queue suites pass on
them as well, but add half a minute, so they keep to STORE_KINDS)."""


def open_test_store(kind: str, request: pytest.FixtureRequest) -> Store:
    """A fresh, empty store of ``kind``; real-service kinds skip (or fail in CI) when missing."""
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        from kqueue.stores.redis import RedisStore

        url = request.getfixturevalue("redis_url")
        return RedisStore(url, prefix=request.getfixturevalue("redis_prefix"))
    if kind in ("redis-sentinel", "redis-cluster"):
        from kqueue.stores.redis import RedisStore

        # A topology of this test run's own: a unique prefix keeps tests apart, and the
        # topology's files go when the run ends.
        topology = request.getfixturevalue(kind.replace("-", "_"))
        return RedisStore(topology.url(), prefix=f"kqtest:{uuid.uuid4().hex[:12]}:")
    from kqueue.stores.sql import SQLStore

    if kind == "sqlite-memory":
        return SQLStore("sqlite://")
    return SQLStore(request.getfixturevalue(f"{kind}_url"))


@pytest.fixture(params=STORE_KINDS + HA_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """The name of the store kind under test."""
    kind: str = request.param
    return kind


@pytest.fixture
def store(store_kind: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    """An empty store of each kind in turn, closed after the test."""
    instance = open_test_store(store_kind, request)
    try:
        yield instance
    finally:
        instance.close()
