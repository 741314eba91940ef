"""Making a Redis store's redis-py clients: the URL checked, the driver imported, and one
client (sync or asyncio) for a single server, a Sentinel-named master or a cluster."""

from __future__ import annotations

from typing import Any

from kqueue.errors import ConfigurationError
from kqueue.stores import _redis_connect as connect
from kqueue.stores.url import REDIS_SCHEMES, redact_url, unencoded_userinfo, url_scheme

UNLIMITED = 2**31
"""The size of a store's pool whose URL sets no ``max_connections`` (a limit in the URL wins):
redis-py 8 caps its default pool at 100 connections (2**31 before)."""


def check_url(url: str) -> None:
    """ConfigurationError unless ``url`` is a Redis URL whose password is percent-encoded."""
    if url_scheme(url) not in REDIS_SCHEMES:
        raise ConfigurationError(f"not a Redis URL: {redact_url(url)!r}")
    if unencoded_userinfo(url):
        raise ConfigurationError(
            f"the password in {redact_url(url)!r} holds / ? # or @ unencoded: "
            "percent-encode them (%2F %3F %23 %40)"
        )


def import_redis() -> Any:
    """The redis package (with its retry and backoff modules), or a ConfigurationError naming
    the extra to install."""
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as exc:
        raise ConfigurationError("RedisStore needs redis-py: pip install kqueue[redis]") from exc
    return redis


def make_client(
    url: str, ha: str | None, timeouts: tuple[float, float | None], *, aio: bool
) -> Any:
    """A new redis-py client of ``url`` (``redis.asyncio``'s with ``aio``): one server, the
    master Sentinel names (``ha`` the scheme of :func:`connect.ha_scheme`), or a cluster.

    No automatic retries: a retried put whose first reply was lost would report a duplicate;
    the queue decides what to retry.
    """
    redis = import_redis()
    options: dict[str, Any] = {}
    if aio:
        import redis.asyncio
        from redis.asyncio.retry import Retry as AsyncRetry

        client_class, no_retry = redis.asyncio.Redis, AsyncRetry(redis.backoff.NoBackoff(), 0)
    else:
        client_class, no_retry = redis.Redis, redis.retry.Retry(redis.backoff.NoBackoff(), 0)
        # redis-py 8 caps a default pool at 100; a URL's max_connections still wins.
        options["max_connections"] = UNLIMITED
    connect_timeout, socket_timeout = timeouts
    if ha == connect.SENTINEL_SCHEME:
        return connect.sentinel_client(
            url,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=no_retry,
            aio=aio,
        )
    if ha == connect.CLUSTER_SCHEME:
        return connect.cluster_client(
            url, connect_timeout=connect_timeout, socket_timeout=socket_timeout, aio=aio
        )
    return client_class.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        retry=no_retry,
        **options,
    )
