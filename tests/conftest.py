"""Fixtures shared by every test: real beanstalkd processes and real store servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import greenstalk
import pytest

from kqueue import KQueue
from tests.redis_servers import Cluster, SentinelSet, running_cluster, running_sentinel_set
from tests.servers import (
    BeanstalkdProcess,
    FakeBroker,
    beanstalkd_binary,
    missing_service,
    tcp_reachable,
)

# Containerised services (pytest-docker): docker_beanstalkd, docker_redis, docker_postgres.
pytest_plugins = ["tests.docker.plugin"]

REDIS_URL = os.environ.get("KQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "KQUEUE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("KQUEUE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _spawn(tmp_path: Path | None = None, **kwargs: object) -> Iterator[BeanstalkdProcess]:
    binary = beanstalkd_binary()
    if binary is None:
        missing_service("beanstalkd binary not found (apt-get install beanstalkd)")
        raise AssertionError("unreachable")
    server = BeanstalkdProcess(binary, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def beanstalkd() -> Iterator[BeanstalkdProcess]:
    """A fresh real beanstalkd on a free port, without binlog; can kill -9 and restart.

    tests/core, tests/integration and tests/throughput override it with
    :func:`either_broker`: their tests run on the real binary and on fakebeanstalk."""
    yield from _spawn()


@pytest.fixture
def real_beanstalkd() -> Iterator[BeanstalkdProcess]:
    """A real beanstalkd process, for tests of what only a process does (SIGSTOP)."""
    yield from _spawn()


def either_broker(request: pytest.FixtureRequest) -> Iterator[BeanstalkdProcess]:
    """The broker of a ``params=BROKERS`` fixture: a real beanstalkd, or fakebeanstalk in
    this process behind the same interface (kill, start, restart without binlog)."""
    if request.param == "real":
        yield from _spawn()
        return
    fake = FakeBroker()
    fake.start()
    try:
        yield fake  # type: ignore[misc]
    finally:
        fake.stop()


BROKERS = ["real", "fake"]


@pytest.fixture
def beanstalkd_binlog(tmp_path: Path) -> Iterator[BeanstalkdProcess]:
    """A fresh real beanstalkd journaling to a binlog directory under tmp_path."""
    binlog = tmp_path / "binlog"
    binlog.mkdir()
    yield from _spawn(binlog_dir=binlog)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """URL of the real Redis; the test gets its own key prefix through ``redis_prefix``."""
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    if not tcp_reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        missing_service(f"Redis not reachable at {parsed.hostname}:{parsed.port}")
    yield REDIS_URL


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelSet]:
    """A Sentinel set (master, replica, three Sentinels) on free ports, started once per run
    by the first test that asks; tests keep to their own key prefixes."""
    with running_sentinel_set() as topology:
        yield topology


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """A three-master Redis Cluster on free ports, started once per run by the first test
    that asks; tests keep to their own key prefixes."""
    with running_cluster() as topology:
        yield topology


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are removed afterwards."""
    import redis

    prefix = f"kqtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _sql_database(base_url: str, name: str) -> Iterator[str]:
    """Create a throwaway database on the server of ``base_url`` and yield its URL."""
    import sqlalchemy  # a dependency of kqueue itself: no skip for it

    url = sqlalchemy.make_url(base_url)
    if not tcp_reachable(url.host or "127.0.0.1", url.port or 0):
        missing_service(f"{url.get_backend_name()} not reachable at {url.host}:{url.port}")
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    db_name = f"kqtest_{name}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {db_name}"))
        yield url.set(database=db_name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {db_name}{force}"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped after the test."""
    yield from _sql_database(POSTGRES_URL, "pg")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """URL of a fresh MariaDB/MySQL database, dropped after the test."""
    yield from _sql_database(MYSQL_URL, "my")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'kqueue.sqlite3'}"


@pytest.fixture
def queue_defaults() -> dict[str, Any]:
    """Keyword arguments every ``make_queue`` queue gets (overridden per test directory)."""
    return {}


@pytest.fixture
def make_queue(
    beanstalkd: BeanstalkdProcess, queue_defaults: dict[str, Any]
) -> Iterator[Callable[..., KQueue]]:
    """Build KQueues on the test's beanstalkd; all are closed after the test."""
    queues: list[KQueue] = []

    def make(**kwargs: Any) -> KQueue:
        options = queue_defaults | kwargs
        queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, **options)
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.close()


@pytest.fixture
def queue(make_queue: Callable[..., KQueue]) -> KQueue:
    """One KQueue on the test's beanstalkd (inline unless the directory sets a store)."""
    return make_queue()


@pytest.fixture
def client(beanstalkd: BeanstalkdProcess) -> Iterator[greenstalk.Client[bytes]]:
    """An independent beanstalkd client (greenstalk) to look at the server's state."""
    with greenstalk.Client(beanstalkd.address, encoding=None) as conn:
        yield conn
