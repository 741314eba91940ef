"""Opening a store from a URL: a registry of URL schemes, open to third-party stores.

=========================================================  ===========================
scheme                                                     store
=========================================================  ===========================
``memory://``                                              :class:`MemoryStore`
``redis://``, ``rediss://``, ``unix://``,                  :class:`RedisStore`
``redis+sentinel://``, ``redis+cluster://``
``sqlite://``, ``postgresql[+driver]://``, ``postgres://``,  :class:`SQLStore`
``mysql[+driver]://``, ``mariadb[+driver]://``
=========================================================  ===========================

Another package adds a scheme through the ``kqueue.stores`` entry point group: the entry's
name is the scheme, its value a callable that takes the URL and returns a
:class:`~kqueue.stores.base.Store`. In its ``pyproject.toml``::

    [project.entry-points."kqueue.stores"]
    mystore = "mypackage.store:open_from_url"

Built-in schemes cannot be replaced that way; :func:`register_scheme` does it in code.

A built-in store's URL may carry ``?prefix=``: kqueue takes it out before the driver sees the
URL, and it becomes the Redis key prefix (``redis://host/0?prefix=myapp:``) or the SQL table
name prefix (``sqlite:///jobs.db?prefix=myapp_``). A plugin's URL reaches it untouched. A
Redis store's URL may also carry ``replicas=`` and ``replica_timeout=`` (the replication
wait of :class:`~kqueue.stores.redis.RedisStore`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from urllib.parse import quote, unquote, urlsplit

from kqueue.errors import ConfigurationError
from kqueue.stores._redis_connect import ha_scheme, split_wait
from kqueue.stores.base import Store
from kqueue.stores.url import REDIS_SCHEMES, SQL_SCHEMES, redact_url, split_prefix, url_scheme

StoreOpener = Callable[[str], Store]
"""Makes a store from its URL."""

ENTRY_POINT_GROUP = "kqueue.stores"


def _memory(url: str) -> Store:
    from kqueue.stores.memory import MemoryStore

    return MemoryStore()


def _redis(url: str) -> Store:
    from kqueue.stores.redis import RedisStore

    clean, prefix = split_prefix(url)
    if ha_scheme(clean) is None:  # a Sentinel or Cluster URL: RedisStore checks its own
        _check_redis_parameters(split_wait(clean)[0])
    return RedisStore(clean) if prefix is None else RedisStore(clean, prefix=prefix)


def _check_redis_parameters(url: str) -> None:
    """ConfigurationError for a query parameter redis-py does not take (a typo such as
    ``prefx=``): redis-py would pass it on as a keyword and fail with a TypeError at the
    first command, far from the URL."""
    query = urlsplit(url).query
    names = {unquote(pair.partition("=")[0]) for pair in query.split("&") if pair}
    if not names:
        return
    try:
        import redis.connection as driver
    except ImportError:
        return  # RedisStore names the extra to install
    known = set(driver.URL_QUERY_ARGUMENT_PARSERS)
    for cls in (
        driver.ConnectionPool,
        driver.AbstractConnection,
        driver.Connection,
        driver.SSLConnection,
        driver.UnixDomainSocketConnection,
    ):
        known |= set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(names - known)
    if unknown:
        raise ConfigurationError(
            f"unknown parameter(s) {', '.join(unknown)} in Redis URL {redact_url(url)!r}: "
            "kqueue reads prefix=, replicas=, replica_timeout=, redis-py the others "
            "(db, socket_timeout, max_connections, ...)"
        )


def _sql(url: str) -> Store:
    from kqueue.stores.sql import SQLStore

    clean, prefix = split_prefix(url)
    return SQLStore(clean) if prefix is None else SQLStore(clean, table_prefix=prefix)


_BUILT_IN: dict[str, StoreOpener] = {
    "memory": _memory,
    **dict.fromkeys(REDIS_SCHEMES, _redis),
    **dict.fromkeys(SQL_SCHEMES, _sql),
}
_registered: dict[str, StoreOpener] = {}


def register_scheme(scheme: str, opener: StoreOpener) -> None:
    """Make ``open_store`` open URLs of ``scheme`` with ``opener`` (in this process)."""
    if not scheme.isidentifier() and not scheme.replace("-", "").isalnum():
        raise ConfigurationError(f"invalid URL scheme {scheme!r}")
    _registered[scheme.lower()] = opener


def _from_entry_points(scheme: str) -> StoreOpener | None:
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        try:
            opener: StoreOpener = entry.load()
        except Exception as exc:  # a broken plugin must say which one
            raise ConfigurationError(
                f"store plugin {entry.name!r} ({entry.value}) failed to load: {exc}"
            ) from exc
        return opener
    return None


def accepted_schemes() -> list[str]:
    """Every scheme open_store knows now: built in, registered, and from entry points."""
    plugins = [entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(set(_BUILT_IN) | set(_registered) | set(plugins))


def with_prefix(url: str, prefix: str | None) -> str:
    """``url`` with ``prefix=`` set (None leaves it as it is); ConfigurationError if the URL
    already names another prefix, or its store takes none."""
    if prefix is None:
        return url
    _clean, written = split_prefix(url)
    if written is not None and written != prefix:
        raise ConfigurationError(
            f"two key prefixes for {redact_url(url)!r}: {written!r} in the URL, {prefix!r} given"
        )
    if url_scheme(url) not in (*REDIS_SCHEMES, *SQL_SCHEMES):
        raise ConfigurationError(f"the store of {redact_url(url)!r} takes no key prefix")
    if written is not None:
        return url
    head, _hash, fragment = url.partition("#")
    joined = f"{head}{'&' if '?' in head else '?'}prefix={quote(prefix, safe='')}"
    return joined + (f"#{fragment}" if _hash else "")


def open_store(url: str) -> Store:
    """The store the URL names; :class:`ConfigurationError` for an unknown scheme.

    A missing optional driver (redis-py, SQLAlchemy, psycopg, PyMySQL) also raises
    :class:`ConfigurationError`, naming the extra to install. ``?prefix=`` in a built-in
    store's URL is kqueue's (see the module docstring).
    """
    scheme = url_scheme(url)
    opener = _registered.get(scheme) or _BUILT_IN.get(scheme) or _from_entry_points(scheme)
    if opener is None:
        accepted = ", ".join(f"{name}://" for name in accepted_schemes())
        raise ConfigurationError(
            f"unknown store URL scheme in {redact_url(url)!r}; accepted schemes: {accepted}"
        )
    return opener(url)
