"""QueueConfig: every setting of a queue, named once, checked once, frozen.

:class:`~kqueue.KQueue` builds one from its keyword arguments and hands the same object to its
producer, consumer and admin. Re-binding a queue to other settings is
``dataclasses.replace(queue.config, ...)`` (see :meth:`KQueue.with_config`); every check runs
again on the copy. Durations are float seconds or :class:`datetime.timedelta`, converted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kqueue.beanstalk.connection import BeanstalkConnection, SocketFactory
from kqueue.errors import ConfigurationError
from kqueue.job import DEFAULT_TUBE_PREFIX, check_u32, validate_tube_prefix
from kqueue.lanes import check_lanes, routed_tube
from kqueue.retry import RetryPolicy
from kqueue.serialization import Codec, JsonCodec

Duration = float | timedelta

DEFAULT_PORT = 11300


def as_seconds(name: str, value: object, *, positive: bool = False) -> float:
    """A duration (float seconds or timedelta) as float seconds; ConfigurationError if bad."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigurationError(f"{name} must be a number of seconds or a timedelta")
    if value < 0 or (positive and value == 0):
        raise ConfigurationError(f"{name} must be {'above' if positive else 'at least'} 0")
    return float(value)


def parse_address(text: str) -> tuple[str, int]:
    """``host:port``, ``host`` or ``[v6]:port`` into a pair; ConfigurationError if bad."""
    if not isinstance(text, str):
        raise ConfigurationError(f"beanstalkd address {text!r} is not a 'host:port' str")
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" not in text:
        host, port = text, str(DEFAULT_PORT)
    else:
        host, port = "", ""
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"beanstalkd address {text!r} is not host:port")
    return host, int(port)


def format_address(host: str, port: int) -> str:
    """``host:port`` (``[v6]:port`` for an IPv6 host), as :func:`parse_address` reads it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_servers(value: object) -> tuple[str, ...]:
    """A list of beanstalkd addresses (or one comma-separated str) as normalized
    ``host:port`` strs; ConfigurationError if one is bad, or one is there twice."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list | tuple):
        raise ConfigurationError("servers must be a list of 'host:port' strs")
    servers: list[str] = []
    for text in value:
        address = format_address(*parse_address(text))
        if address in servers:
            raise ConfigurationError(f"beanstalkd server {address} is listed twice")
        servers.append(address)
    return tuple(servers)


@dataclass(frozen=True)
class QueueConfig:
    """The settings of a :class:`~kqueue.KQueue` (the arguments of the same names).

    - ``host``, ``port``: the beanstalkd server; ``connect``: a function that opens the socket
      instead (a unix socket, an in-process fakebeanstalk), host and port then only name it;
    - ``servers``: several beanstalkd servers bonded into one queue (``"host:port"`` strs, or
      one comma-separated str); empty: the one server ``host:port``. With servers, host and
      port must be left at their defaults or name the first server, and ``connect`` is not
      allowed (it opens one socket). :attr:`addresses` is the list either way;
    - ``server_down_grace``: of several servers, the seconds one may stay unreachable before
      recovery puts its jobs back onto the others (a server back sooner still holds them);
    - ``tube_prefix``: job type ``t`` lives in tube ``tube_prefix + t``;
    - ``codec``: encodes payloads (JSON by default; bytes always travel raw);
    - ``retry``: the default :class:`~kqueue.retry.RetryPolicy` of handlers;
    - ``strict``: add_job raises (and removes the record) when beanstalkd refuses the
      reference, instead of leaving the accepted job to the recovery sweeper;
    - ``connect_timeout``, ``command_timeout``: seconds to connect, and to wait for a reply;
    - ``reconnect_delay``: (first, longest) pause of a worker after a broker or store failure;
    - ``recovery_grace``: records younger than this are left to their producer by the sweeper;
    - ``window``: the most jobs a worker reserves at once; ``window_target``: seconds of work
      a window may hold at the measured pace (see :mod:`kqueue.window`);
    - ``inline_copy_max``: with a store, payloads up to this many bytes also travel in the
      beanstalkd body (mode ``s``), saving the worker a store read; 0 turns it off;
    - ``heartbeat``: a waiting worker asks beanstalkd at least this often (whole seconds)
      whether it is still there, so a frozen or cut-off server is noticed within
      ``heartbeat + command_timeout`` seconds, not never;
    - ``count_lost_attempts``: attempts that never finished (the TTR ran out, the worker died)
      count against a job's retry budget, so a job that kills its worker is buried after its
      budget instead of starving its type; costs one beanstalkd round trip per window (see
      docs/performance.md), which False saves;
    - ``lanes``: 0 (the default) gives each job type its own tube; N puts the jobs of every
      type into one of N shared tubes (see :mod:`kqueue.lanes`): beanstalkd's cost per job
      then stays flat with thousands of types. Producers and workers of a queue must agree on
      it. Not with several servers (``servers``).
    """

    host: str = "127.0.0.1"
    port: int = 11300
    tube_prefix: str = DEFAULT_TUBE_PREFIX
    codec: Codec = field(default_factory=JsonCodec)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    strict: bool = False
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    reconnect_delay: tuple[float, float] = (0.05, 5.0)
    recovery_grace: float = 30.0
    window: int = 128
    window_target: float = 0.02
    inline_copy_max: int = 1024
    heartbeat: float = 30.0
    count_lost_attempts: bool = True
    connect: SocketFactory | None = field(default=None, compare=False)
    servers: tuple[str, ...] = ()
    server_down_grace: float = 60.0
    lanes: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigurationError("host must be a non-empty str")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigurationError("port must be an int")
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"port must be between 1 and 65535, got {self.port}")
        validate_tube_prefix(self.tube_prefix)
        if not isinstance(self.retry, RetryPolicy):
            raise ConfigurationError("retry must be a RetryPolicy")
        for name in ("strict", "count_lost_attempts"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be a bool")
        if self.connect is not None and not callable(self.connect):
            raise ConfigurationError("connect must be a function returning a connected socket")
        self._set_seconds()
        self._set_servers()
        check_u32("window", self.window, minimum=1)
        check_u32("inline_copy_max", self.inline_copy_max)
        check_lanes(self.lanes, self.tube_prefix)
        if self.lanes and self.bonded:
            raise ConfigurationError(
                "lanes are not supported with several beanstalkd servers: give lanes=0"
            )

    def _set_seconds(self) -> None:
        set_ = object.__setattr__  # frozen: converted once, here
        for name in ("connect_timeout", "command_timeout", "window_target"):
            set_(self, name, as_seconds(name, getattr(self, name), positive=True))
        set_(
            self,
            "heartbeat",
            float(math.ceil(as_seconds("heartbeat", self.heartbeat, positive=True))),
        )
        set_(self, "recovery_grace", as_seconds("recovery_grace", self.recovery_grace))
        set_(self, "server_down_grace", as_seconds("server_down_grace", self.server_down_grace))
        try:
            first, longest = self.reconnect_delay
        except (TypeError, ValueError):
            raise ConfigurationError("reconnect_delay must be a pair (first, longest)") from None
        pair = (as_seconds("reconnect_delay", first), as_seconds("reconnect_delay", longest))
        if pair[0] > pair[1]:
            raise ConfigurationError("reconnect_delay: the first pause exceeds the longest")
        set_(self, "reconnect_delay", pair)

    def _set_servers(self) -> None:
        if not self.servers:
            object.__setattr__(self, "servers", ())
            return
        servers = parse_servers(self.servers)
        if not servers:
            raise ConfigurationError("servers: give at least one 'host:port'")
        object.__setattr__(self, "servers", servers)
        first = parse_address(servers[0])
        if (self.host, self.port) not in (first, ("127.0.0.1", DEFAULT_PORT)):
            raise ConfigurationError(
                f"host and port ({format_address(self.host, self.port)}) disagree with "
                f"servers (the first is {servers[0]}): give one or the other"
            )
        if self.connect is not None and len(servers) > 1:
            raise ConfigurationError(
                "connect= opens the socket of one server; with several servers give only "
                "their addresses"
            )

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """Every beanstalkd server of the queue as (host, port), in the configured order."""
        if not self.servers:
            return ((self.host, self.port),)
        return tuple(parse_address(server) for server in self.servers)

    @property
    def bonded(self) -> bool:
        """True when the queue spans more than one beanstalkd server."""
        return len(self.servers) > 1

    @classmethod
    def from_arguments(cls, **settings: Any) -> QueueConfig:
        """A config from :class:`~kqueue.KQueue`'s arguments: ``codec`` and ``retry`` None
        mean the defaults, durations may be timedeltas (every value is checked)."""
        defaults = {"codec": JsonCodec(), "retry": RetryPolicy()}
        for name, default in defaults.items():
            if settings.get(name) is None:
                settings[name] = default
        return cls(**settings)

    def tube_of(self, job_type: str) -> str:
        """The tube the jobs of ``job_type`` are put into (its own, or its lane with lanes),
        after checking the name (InvalidJobTypeError)."""
        return routed_tube(job_type, self.tube_prefix, self.lanes)

    @property
    def address(self) -> str:
        """``host:port`` of the beanstalkd server (of each, comma-separated), for messages."""
        return ",".join(format_address(host, port) for host, port in self.addresses)

    def new_connection(self, address: tuple[str, int] | None = None) -> BeanstalkConnection:
        """A new (not yet connected) beanstalkd connection with these settings, to the
        server at ``address`` (None: the first server)."""
        host, port = self.addresses[0] if address is None else address
        return BeanstalkConnection(
            host,
            port,
            connect_timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
            socket_factory=self.connect,
        )
