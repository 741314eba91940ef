"""Several beanstalkd servers in one queue: how they are configured (QueueConfig, KQueue,
KQUEUE_BEANSTALKD / --beanstalkd) and what is refused."""

from __future__ import annotations

import argparse
import dataclasses
import socket

import pytest

from kqueue import ConfigurationError, KQueue, QueueConfig
from kqueue.aio import AsyncKQueue
from kqueue.cli.config import Settings


def test_servers_are_normalized_and_frozen() -> None:
    config = QueueConfig(servers=["h1:11300", " h2 ", "[::1]:11301"])  # type: ignore[arg-type]
    assert config.servers == ("h1:11300", "h2:11300", "[::1]:11301")
    assert config.addresses == (("h1", 11300), ("h2", 11300), ("::1", 11301))
    assert config.bonded
    assert config.address == "h1:11300,h2:11300,[::1]:11301"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.servers = ()  # type: ignore[misc]


def test_host_and_port_alone_name_one_server() -> None:
    config = QueueConfig(host="example", port=11400)
    assert config.addresses == (("example", 11400),)
    assert not config.bonded
    moved = dataclasses.replace(config, port=11401)  # re-binding one server still works
    assert moved.addresses == (("example", 11401),)


@pytest.mark.parametrize(
    "servers",
    [
        ["h1:0"],
        ["h1:11300", "h1:11300"],  # the same server twice would get twice the puts
        ["h1:port"],
        [""],
        [11300],
        42,
    ],
)
def test_bad_servers_are_a_configuration_error(servers: object) -> None:
    with pytest.raises(ConfigurationError):
        QueueConfig(servers=servers)  # type: ignore[arg-type]


def test_host_and_port_must_agree_with_servers() -> None:
    # Given both, host:port must be the first server (or left at the defaults).
    assert QueueConfig(host="h1", port=11300, servers=("h1:11300", "h2:11300")).bonded
    with pytest.raises(ConfigurationError, match="disagree"):
        QueueConfig(host="h3", port=11300, servers=("h1:11300", "h2:11300"))
    with pytest.raises(ConfigurationError, match="disagree"):
        KQueue(port=11301, servers=["h1:11300", "h2:11300"])


def test_a_socket_factory_opens_one_server_only() -> None:
    def connect() -> socket.socket:
        raise OSError("never called")

    assert QueueConfig(servers=("h1:11300",), connect=connect).connect is connect
    with pytest.raises(ConfigurationError, match="connect="):
        QueueConfig(servers=("h1:11300", "h2:11300"), connect=connect)


def test_kqueue_reads_back_the_first_server() -> None:
    queue = KQueue(servers=["h1:11301", "h2:11302"])
    assert (queue.host, queue.port) == ("h1", 11301)
    assert "h1:11301,h2:11302" in repr(queue)


def test_the_asyncio_queue_takes_several_servers_for_adding() -> None:
    queue = AsyncKQueue(servers=["h1:11300", "h2:11300"])
    assert [server.address for server in queue.producer.servers] == ["h1:11300", "h2:11300"]


def _settings(flag: str | None, env: dict[str, str]) -> Settings:
    return Settings.from_args(argparse.Namespace(beanstalkd=flag), env)


def test_the_command_line_takes_a_comma_separated_list() -> None:
    settings = _settings(None, {"KQUEUE_BEANSTALKD": "h1:11300,h2:11301"})
    assert settings.servers == ("h1:11300", "h2:11301")
    assert settings.open_queue().config.addresses == (("h1", 11300), ("h2", 11301))
    one = _settings("h3:11302", {"KQUEUE_BEANSTALKD": "h1:11300,h2:11301"})  # the flag wins
    assert (one.host, one.port, one.servers) == ("h3", 11302, ())
    with pytest.raises(ConfigurationError):
        _settings("h1:11300,,h2", {})
