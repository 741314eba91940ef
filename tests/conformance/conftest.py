"""Fixtures of the conformance suite: every test runs against the real beanstalkd and the fake.

``server`` is a fresh server of the parametrized kind; ``spawn`` makes more (a small max job
size, a unix socket, a binlog); ``conn`` is one raw connection to ``server``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.rawclient import RawConnection
from tests.conformance.targets import (
    SERVER_KINDS,
    ServerFactory,
    ServerTarget,
    _fake_server_class,
)
from tests.servers import beanstalkd_binary, missing_service


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Which server the test runs against: ``real`` or ``fake``."""
    kind: str = request.param
    return kind


@pytest.fixture
def spawn(server_kind: str, tmp_path: Path) -> Iterator[ServerFactory]:
    """Starts servers of the test's kind; all are stopped when the test ends."""
    factory = ServerFactory(server_kind, tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def server(spawn: ServerFactory) -> ServerTarget:
    """A fresh server with default options."""
    return spawn.spawn()


@pytest.fixture
def conn(server: ServerTarget) -> Iterator[RawConnection]:
    """One raw connection to ``server``."""
    with server.connect() as connection:
        yield connection


@pytest.fixture
def both_servers_available() -> None:
    """The real binary must exist (else skip locally, fail in CI); the fake must import."""
    if beanstalkd_binary() is None:
        missing_service("beanstalkd binary not found (apt-get install beanstalkd)")
    _fake_server_class()
