"""pytest-docker fixtures: beanstalkd, Redis and PostgreSQL in containers built on this machine.

``docker_services`` (pytest-docker) brings tests/docker-compose.yml up once per session on our
private engine (``ci/docker.sh start``); the containers share the host's network, each server on
a free loopback port picked here. Our fixtures wait for readiness and hand out:

- ``docker_beanstalkd``: a :class:`ContainerBeanstalkd`, emptied for each test, that can be
  killed (``docker kill -s KILL``), restarted on the same port, frozen and thawed
  (``docker pause`` / ``unpause``);
- ``docker_redis``: the URL of the container's Redis, flushed for each test;
- ``docker_postgres``: the URL of a fresh database on the container's PostgreSQL.

Without an engine the tests skip locally and fail when ``CI=true`` or ``KQUEUE_TEST_DOCKER=1``
(asked for by name: a skip would hide that they never ran).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.docker.containers import (
    Container,
    ContainerBeanstalkd,
    engine_host,
    engine_problem,
    images_tag,
)
from tests.servers import IN_CI, free_port, missing_service, tcp_reachable

if TYPE_CHECKING:  # pytest-docker is only needed once a container fixture is used
    from pytest_docker import Services

COMPOSE_FILE = Path(__file__).parent.parent / "docker-compose.yml"
READY_TIMEOUT = 60.0  # a cold PostgreSQL on a loaded two-core machine


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """Our engine's address once it answers and has the images; skips (or fails) otherwise."""
    problem = engine_problem()
    if problem is not None:
        reason = f"containerised tests: {problem}; run `ci/docker.sh start` first"
        requested = os.environ.get("KQUEUE_TEST_DOCKER", "").lower() in {"1", "true", "yes"}
        if requested and not IN_CI:
            pytest.fail(f"KQUEUE_TEST_DOCKER is set but {reason}", pytrace=False)
        missing_service(reason)
    return engine_host()


@pytest.fixture(scope="session")
def docker_ports(docker_engine: str) -> Iterator[dict[str, int]]:
    """A free port per service, passed to compose through the environment it interpolates."""
    ports = {name: free_port() for name in ("beanstalkd", "redis", "postgres")}
    values = {f"KQ_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    values |= {"KQUEUE_DOCKER_TAG": images_tag(), "DOCKER_HOST": docker_engine}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)  # pytest-docker runs compose with the process environment
    yield ports
    for name, old in saved.items():
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    """Debian's docker-compose (v1) when installed, else the v2 plugin."""
    return "docker-compose" if shutil.which("docker-compose") else "docker compose"


@pytest.fixture(scope="session")
def docker_compose_file(docker_ports: dict[str, int]) -> str:
    """tests/docker-compose.yml; depends on the ports so they are set before `up`."""
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    """One project per pytest process, so parallel runs never share containers."""
    return f"kqueue-test-{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Start from images built by tests/docker/build-images.sh: no build, no pull."""
    return ["up -d --no-build"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    """Remove the containers and their volumes; one second's grace is plenty for test data."""
    return ["down -v -t 1"]


def wait_ready(
    services: Services, project: str, service: str, check: Callable[[], bool]
) -> Container:
    """Wait until ``check`` passes for the service's container; fail with its logs if never."""
    container = Container(project, service)
    try:
        services.wait_until_responsive(check=check, timeout=READY_TIMEOUT, pause=0.05)
    except Exception as exc:  # pytest-docker raises a bare Exception on its timeout
        pytest.fail(
            f"{service} container not ready within {READY_TIMEOUT} s ({exc}); "
            f"state {container.state()}, logs:\n{container.logs()}",
            pytrace=False,
        )
    return container


@pytest.fixture(scope="session")
def docker_beanstalkd_session(
    docker_services: Services,
    docker_ip: str,
    docker_ports: dict[str, int],
    docker_compose_project_name: str,
) -> ContainerBeanstalkd:
    """The session's beanstalkd container, once it accepts connections."""
    port = docker_ports["beanstalkd"]
    container = wait_ready(
        docker_services,
        docker_compose_project_name,
        "beanstalkd",
        lambda: tcp_reachable(docker_ip, port),
    )
    return ContainerBeanstalkd(container, docker_ip, port)


@pytest.fixture
def docker_beanstalkd(
    docker_beanstalkd_session: ContainerBeanstalkd,
) -> Iterator[ContainerBeanstalkd]:
    """beanstalkd in a container, empty: restarted (no binlog) so no earlier test's jobs remain."""
    server = docker_beanstalkd_session
    server.unpause()
    server.restart(binlog_dir=False)
    yield server
    server.unpause()  # a frozen broker would stall the next test's fixture
    if server.container.state() != "running":
        server.start()


def redis_answers(url: str) -> bool:
    """True once Redis answers PING (a listening socket alone may still be loading)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_redis_session(
    docker_services: Services,
    docker_ip: str,
    docker_ports: dict[str, int],
    docker_compose_project_name: str,
) -> str:
    """URL of the session's Redis container, once it answers."""
    url = f"redis://{docker_ip}:{docker_ports['redis']}/0"
    wait_ready(docker_services, docker_compose_project_name, "redis", lambda: redis_answers(url))
    return url


@pytest.fixture
def docker_redis(docker_redis_session: str) -> str:
    """URL of Redis in a container, emptied for this test (the server is ours alone)."""
    import redis

    client = redis.Redis.from_url(docker_redis_session)
    try:
        client.flushall()
    finally:
        client.close()
    return docker_redis_session


def postgres_answers(url: str) -> bool:
    """True once PostgreSQL accepts a session (it listens before recovery has finished)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def docker_postgres_session(
    docker_services: Services,
    docker_ip: str,
    docker_ports: dict[str, int],
    docker_compose_project_name: str,
) -> str:
    """libpq URL of the session's PostgreSQL container (database ``postgres``), once it serves."""
    url = f"postgresql://postgres@{docker_ip}:{docker_ports['postgres']}/postgres"
    wait_ready(
        docker_services, docker_compose_project_name, "postgres", lambda: postgres_answers(url)
    )
    return url


@pytest.fixture
def docker_postgres(docker_postgres_session: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database on PostgreSQL in a container, dropped afterwards."""
    import psycopg

    name = f"kqtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(docker_postgres_session, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = docker_postgres_session.rsplit("/", 1)[0].replace("postgresql://", "")
    yield f"postgresql+psycopg://{base}/{name}"
    with psycopg.connect(docker_postgres_session, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker of the container tests (``-m "not docker"`` leaves them out)."""
    config.addinivalue_line("markers", "docker: runs servers in containers of our Docker engine")
