"""The container fixtures themselves: real servers on loopback, killable, freezable, fresh."""

from __future__ import annotations

import socket
import time

import greenstalk
import pytest
import redis

from kqueue import KQueue
from tests.docker.containers import ContainerBeanstalkd

pytestmark = pytest.mark.docker


def test_killed_beanstalkd_container_comes_back_empty_on_the_same_port(
    docker_beanstalkd: ContainerBeanstalkd,
) -> None:
    with greenstalk.Client(docker_beanstalkd.address) as client:
        client.put("before the kill")
        assert client.stats()["current-jobs-ready"] == 1
    docker_beanstalkd.kill()
    with pytest.raises(OSError):
        socket.create_connection(docker_beanstalkd.address, timeout=1).close()
    docker_beanstalkd.start()
    with greenstalk.Client(docker_beanstalkd.address) as client:
        assert client.stats()["current-jobs-ready"] == 0  # no binlog: a killed broker forgets


def test_paused_beanstalkd_accepts_connections_but_never_answers(
    docker_beanstalkd: ContainerBeanstalkd,
) -> None:
    docker_beanstalkd.pause()
    # The kernel still completes the handshake: to a client the broker looks alive, and only
    # a reply timeout can tell it is frozen (what killing a process can never show).
    with socket.create_connection(docker_beanstalkd.address, timeout=2) as sock:
        sock.sendall(b"stats\r\n")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        docker_beanstalkd.unpause()
        sock.settimeout(10)
        reply = sock.makefile("rb").read(2)  # whole bytes, however the segments fall
        assert reply == b"OK"  # the frozen request is served once thawed


def test_redis_container_is_flushed_for_each_test(docker_redis: str) -> None:
    client = redis.Redis.from_url(docker_redis)
    try:
        assert client.dbsize() == 0
        client.set("kqueue:docker-fixture", "left behind on purpose")
    finally:
        client.close()


def test_jobs_round_trip_through_postgres_and_beanstalkd_containers(
    docker_beanstalkd: ContainerBeanstalkd, docker_postgres: str
) -> None:
    ran: list[int] = []
    with KQueue(
        host=docker_beanstalkd.host, port=docker_beanstalkd.port, bulk_store=docker_postgres
    ) as queue:
        queue.add_handler("pg", lambda job: ran.append(job.data))
        ids = queue.add_jobs("pg", range(20))
        assert all(ids), "every job scheduled while both servers are up"
        deadline = time.monotonic() + 20
        while len(ran) < 20 and time.monotonic() < deadline:
            queue.run_jobs(count_limit=20 - len(ran), time_limit_ms=500)
        assert sorted(ran) == list(range(20))
        assert queue.store is not None and queue.store.count() == 0
