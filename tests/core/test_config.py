"""QueueConfig: every setting checked once, frozen, re-bound with dataclasses.replace; and a
queue handed its broker connection by a socket factory."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from kqueue import ConfigurationError, Job, KQueue, QueueConfig, RetryPolicy
from kqueue.errors import InvalidJobTypeError, ValidationError
from kqueue.stores import MemoryStore


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("port", 0),
        ("port", 70000),
        ("port", "11300"),
        ("host", ""),
        ("connect_timeout", 0),
        ("command_timeout", -1.0),
        ("recovery_grace", float("nan")),
        ("reconnect_delay", (5.0, 1.0)),
        ("reconnect_delay", 3),
        ("strict", "yes"),
        ("retry", 5),
        ("connect", "not callable"),
    ],
)
def test_a_bad_setting_is_a_configuration_error(setting: str, value: object) -> None:
    with pytest.raises(ConfigurationError):
        QueueConfig(**{setting: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(("setting", "value"), [("window", 0), ("inline_copy_max", -1)])
def test_a_bad_count_is_a_validation_error(setting: str, value: int) -> None:
    with pytest.raises(ValidationError):
        QueueConfig(**{setting: value})  # type: ignore[arg-type]


def test_a_bad_tube_prefix_is_refused() -> None:
    with pytest.raises(InvalidJobTypeError):
        QueueConfig(tube_prefix="-bad")


def test_durations_may_be_timedeltas_and_are_converted_once() -> None:
    queue = KQueue(recovery_grace=timedelta(minutes=2), command_timeout=timedelta(seconds=3))
    assert queue.config.recovery_grace == 120.0
    assert queue.config.command_timeout == 3.0
    assert isinstance(queue.config.recovery_grace, float)
    queue.close()


def test_the_config_is_frozen_and_replace_checks_again() -> None:
    config = QueueConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    with pytest.raises(ConfigurationError):
        dataclasses.replace(config, port=-5)
    assert dataclasses.replace(config, port=11301).port == 11301


def test_with_config_keeps_handlers_codecs_middleware_and_every_setting(
    make_queue: Callable[..., KQueue],
) -> None:
    store = MemoryStore()
    policy = RetryPolicy(max_attempts=2)
    queue = make_queue(
        bulk_store=store, retry=policy, tube_prefix="app-", window=7, inline_copy_max=10
    )
    ran: list[object] = []
    queue.add_handler("x", lambda job: ran.append(job.data), auto_touch=True)
    moved = queue.with_config(dataclasses.replace(queue.config, recovery_grace=1.5))
    try:
        assert moved.config == dataclasses.replace(queue.config, recovery_grace=1.5)
        assert moved.store is store and moved.codecs is queue.codecs
        assert moved.handlers["x"].auto_touch
        moved.add_job("x", "through the moved queue")
        assert moved.run_jobs(time_limit_ms=0) == 1
        assert ran == ["through the moved queue"]
    finally:
        moved.close()


def test_a_socket_factory_hands_the_queue_its_broker_connection(tmp_path: Path) -> None:
    from fakebeanstalk.server import FakeBeanstalkServer

    path = tmp_path / "beanstalkd.sock"
    opened: list[socket.socket] = []

    def over_unix_socket() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(path))
        opened.append(sock)
        return sock

    with FakeBeanstalkServer(host=None, unix_path=path) as server:
        queue = KQueue(host="unix", port=1, connect=over_unix_socket)
        seen: list[Job] = []
        queue.add_handler("u", seen.append)
        queue.add_job("u", {"over": "unix"})
        assert queue.run_jobs(time_limit_ms=0) == 1
        assert seen[0].data == {"over": "unix"}
        assert len(opened) >= 2  # the producer's and the worker's connections
        assert server.stats()["total-jobs"] == "1"
        queue.close()
