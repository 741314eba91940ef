"""How a :class:`~kqueue.stores.redis.RedisStore` reaches Redis: one server, Sentinel or Cluster.

=================================================================  =============================
URL                                                                connects to
=================================================================  =============================
``redis://[user:pw@]host:port/db``, ``rediss://``, ``unix://``     one server (redis-py's URLs)
``redis+sentinel://[user:pw@]h1:26379,h2:26379/mymaster[/db]``     the master a set of Sentinels
                                                                   names for ``mymaster``
``redis+cluster://[user:pw@]h1:7000,h2:7001/``                     a Redis Cluster (any nodes
                                                                   of it; the others are found)
=================================================================  =============================

The user and password of a Sentinel or Cluster URL are those of the Redis servers; Sentinels
that ask for a password of their own take ``?sentinel_password=`` (and
``sentinel_username=``). A Sentinel store asks the Sentinels for the master when it connects
and again after a connection fails, so a failover costs the calls in flight, not a restart.

Beside ``prefix=``, every Redis store URL may carry kqueue's replication wait:
``replicas=1&replica_timeout=0.5`` (see :class:`~kqueue.stores.redis.RedisStore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote

from kqueue.errors import ConfigurationError
from kqueue.stores.url import redact_url

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
HA_SCHEMES = (SENTINEL_SCHEME, CLUSTER_SCHEME)
"""The schemes this module parses itself (redis-py's ``from_url`` takes the others)."""

WAITED = frozenset({"put"})
"""The script calls after which a store with ``replicas`` waits for them: the record writes
that make a job accepted (put_many's; put_unique waits in its own method)."""

_SENTINEL_OPTIONS = frozenset({"sentinel_password", "sentinel_username"})
_WAIT_OPTIONS = ("replicas", "replica_timeout")


class ReplicaWait(NamedTuple):
    """Wait for this many replicas to confirm a record write, for at most ``timeout_ms``."""

    replicas: int
    timeout_ms: int


@dataclass(frozen=True)
class HaUrl:
    """A parsed ``redis+sentinel://`` or ``redis+cluster://`` URL."""

    scheme: str
    nodes: list[tuple[str, int]]
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def ha_scheme(url: str) -> str | None:
    """``redis+sentinel`` or ``redis+cluster`` when ``url`` has one of them, else None."""
    scheme = url.partition("://")[0].lower()
    return scheme if scheme in HA_SCHEMES else None


def _bad(url: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"invalid Redis URL {redact_url(url)!r}: {why}")


def _nodes(url: str, hosts: str) -> list[tuple[str, int]]:
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(url, f"give every node as host:port, not {item!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def parse_ha_url(url: str) -> HaUrl:
    """Split a Sentinel or Cluster URL into its parts; ConfigurationError when malformed."""
    scheme, _sep, rest = url.partition("://")
    scheme = scheme.lower()
    rest, _hash, _fragment = rest.partition("#")
    rest, _question, query = rest.partition("?")
    authority, _slash, path = rest.partition("/")
    username = password = None
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = _nodes(url, authority)
    options: dict[str, str] = {}
    for pair in query.split("&"):
        if pair:
            name, _equals, value = pair.partition("=")
            options[unquote(name)] = unquote(value)
    parts = [part for part in path.split("/") if part]
    if scheme == CLUSTER_SCHEME:
        if parts:
            raise _bad(url, "a Redis Cluster has database 0 only: end the URL after the nodes")
        unknown = sorted(options)
        service, db = "", 0
    else:
        if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            raise _bad(url, "name the Sentinel service and optionally a database: /mymaster/0")
        service, db = unquote(parts[0]), int(parts[1]) if len(parts) == 2 else 0
        unknown = sorted(set(options) - _SENTINEL_OPTIONS)
    if unknown:
        raise _bad(url, f"unknown parameter(s) {', '.join(unknown)}")
    return HaUrl(scheme, nodes, service, db, username, password, options)


def split_wait(url: str) -> tuple[str, ReplicaWait | None]:
    """``url`` without ``replicas=`` and ``replica_timeout=``, and the wait they ask for."""
    head, question, query = url.partition("?")
    if not question:
        return url, None
    query, hash_mark, fragment = query.partition("#")
    kept: list[str] = []
    found: dict[str, str] = {}
    for pair in query.split("&"):
        name, _equals, value = pair.partition("=")
        if unquote(name) in _WAIT_OPTIONS:
            found[unquote(name)] = unquote(value)
        elif pair:
            kept.append(pair)
    if not found:
        return url, None
    clean = head + ("?" + "&".join(kept) if kept else "") + (hash_mark + fragment)
    try:
        replicas = int(found.get("replicas", "1"))
        timeout = float(found.get("replica_timeout", "1"))
    except ValueError:
        raise _bad(url, "replicas= takes a whole number, replica_timeout= seconds") from None
    return clean, replica_wait(replicas, timeout)


def replica_wait(replicas: int, timeout: float) -> ReplicaWait | None:
    """The wait for ``replicas`` (0: none) within ``timeout`` seconds; ConfigurationError for
    a negative count or a timeout that is not positive (WAIT's 0 would wait for ever)."""
    if replicas < 0 or not timeout > 0:
        raise ConfigurationError(
            f"replicas must be 0 or more and replica_timeout positive, not {replicas}, {timeout}"
        )
    return ReplicaWait(replicas, max(1, round(timeout * 1000))) if replicas else None


def store_options(
    url: str, prefix: str, replicas: int | None, replica_timeout: float
) -> tuple[str, str, ReplicaWait | None]:
    """The URL without kqueue's wait parameters, the key prefix (a hash tag on a cluster),
    and the replication wait (the ``replicas`` keyword over the URL's)."""
    url, wait = split_wait(url)
    if replicas is not None:
        wait = replica_wait(replicas, replica_timeout)
    if ha_scheme(url) == CLUSTER_SCHEME:
        prefix = cluster_prefix(prefix)
        if wait is not None:
            raise ConfigurationError(
                "replicas= is for redis:// and redis+sentinel:// stores: a Redis Cluster "
                "answers WAIT per node, which a cluster client does not address"
            )
    return url, prefix, wait


def _common(parsed: HaUrl, connect_timeout: float, socket_timeout: float | None) -> dict[str, Any]:
    return {
        "username": parsed.username,
        "password": parsed.password,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
    }


def sentinel_client(
    url: str, *, connect_timeout: float, socket_timeout: float | None, retry: Any, aio: bool
) -> Any:
    """A client of the master the Sentinels of ``url`` name (sync or ``redis.asyncio``)."""
    import redis.asyncio.sentinel
    import redis.sentinel

    sentinel_class: Any = redis.asyncio.sentinel.Sentinel if aio else redis.sentinel.Sentinel
    parsed = parse_ha_url(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": connect_timeout,
    }
    if "sentinel_password" in parsed.options:
        sentinel_kwargs["password"] = parsed.options["sentinel_password"]
    if "sentinel_username" in parsed.options:
        sentinel_kwargs["username"] = parsed.options["sentinel_username"]
    sentinels = sentinel_class(parsed.nodes, sentinel_kwargs=sentinel_kwargs)
    return sentinels.master_for(
        parsed.service,
        db=parsed.db,
        retry=retry,
        **_common(parsed, connect_timeout, socket_timeout),
    )


def cluster_client(
    url: str, *, connect_timeout: float, socket_timeout: float | None, aio: bool
) -> Any:
    """A Redis Cluster client on the nodes of ``url`` (the sync one connects at once)."""
    parsed = parse_ha_url(url)
    if aio:
        from redis.asyncio.cluster import ClusterNode as AsyncNode
        from redis.asyncio.cluster import RedisCluster as AsyncCluster

        return AsyncCluster(
            startup_nodes=[AsyncNode(host, port) for host, port in parsed.nodes],
            **_common(parsed, connect_timeout, socket_timeout),
        )
    import redis.cluster

    node: Any = redis.cluster.ClusterNode
    return redis.cluster.RedisCluster(
        startup_nodes=[node(host, port) for host, port in parsed.nodes],
        **_common(parsed, connect_timeout, socket_timeout),
    )


def cluster_prefix(prefix: str) -> str:
    """The key prefix as a hash tag, so that every key of one store lives in one slot:
    ``kq:`` becomes ``{kq:}``; a prefix that holds a tag already (``{app}:``) stays."""
    start = prefix.find("{")
    if start != -1 and prefix.find("}", start + 2) != -1:
        return prefix
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError(
            f"the key prefix {prefix!r} of a Redis Cluster store holds a brace but no hash tag"
        )
    return "{" + prefix + "}"
