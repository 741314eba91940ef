"""Opening a store from a URL, and keeping the credentials in it out of sight.

``open_store`` picks the store class from the URL scheme:

=========================================================  ===========================
scheme                                                     store
=========================================================  ===========================
``memory://``                                              :class:`MemoryStore`
``redis://``, ``rediss://``, ``unix://``                   :class:`RedisStore`
``sqlite://``, ``postgresql[+driver]://``, ``postgres://``,  :class:`SQLStore`
``mysql[+driver]://``, ``mariadb[+driver]://``
=========================================================  ===========================
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from kqueue.errors import ConfigurationError
from kqueue.stores.base import Store

REDACTED = "***"
"""What a password is replaced with in :func:`redact_url`."""

_SECRET_QUERY_NAMES = frozenset({"password", "passwd", "pwd", "secret", "token", "sslpassword"})

REDIS_SCHEMES = ("redis", "rediss", "unix")
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
ACCEPTED_SCHEMES = ("memory", *REDIS_SCHEMES, *SQL_SCHEMES)
"""URL schemes :func:`open_store` accepts (SQL schemes may carry a ``+driver``)."""


def redact_url(url: str) -> str:
    """``url`` with its password (in the user info or the query string) replaced by ``***``.

    Everything else is kept as written. Safe for logs, reprs and error messages; never raises.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if colon else f"{user}@{hostport}"
    path, question, query = tail.partition("?")
    query, hash_mark, fragment = query.partition("#")
    if query:
        pairs = []
        for pair in query.split("&"):
            name, equals, _value = pair.partition("=")
            secret = unquote(name).lower() in _SECRET_QUERY_NAMES
            pairs.append(f"{name}={REDACTED}" if secret and equals else pair)
        query = "&".join(pairs)
    return f"{scheme}://{netloc}{path}{question}{query}{hash_mark}{fragment}"


def _secrets(url: str) -> set[str]:
    """Every password in ``url``, as written and percent-decoded."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        if parts.password:
            found.add(parts.password)
        for pair in parts.query.split("&"):
            name, _equals, value = pair.partition("=")
            if unquote(name).lower() in _SECRET_QUERY_NAMES and value:
                found.add(value)
    except ValueError:
        pass
    return found | {unquote(secret) for secret in found}


def scrub(message: str, url: str) -> str:
    """``message`` with every password of ``url`` replaced by ``***`` (for driver messages)."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        message = message.replace(secret, REDACTED)
    return message


def url_scheme(url: str) -> str:
    """The scheme of ``url`` without a ``+driver`` suffix, lower-cased ('' if none)."""
    scheme, sep, _rest = url.partition("://")
    if not sep:
        return ""
    return scheme.split("+", 1)[0].lower()


def open_store(url: str) -> Store:
    """The store the URL names; :class:`ConfigurationError` for an unknown scheme.

    A missing optional driver (redis-py, SQLAlchemy, psycopg, PyMySQL) also raises
    :class:`ConfigurationError`, naming the extra to install.
    """
    scheme = url_scheme(url)
    if scheme == "memory":
        from kqueue.stores.memory import MemoryStore

        return MemoryStore()
    if scheme in REDIS_SCHEMES:
        from kqueue.stores.redis import RedisStore

        return RedisStore(url)
    if scheme in SQL_SCHEMES:
        from kqueue.stores.sql import SQLStore

        return SQLStore(url)
    accepted = ", ".join(f"{name}://" for name in ACCEPTED_SCHEMES)
    raise ConfigurationError(
        f"unknown store URL scheme in {redact_url(url)!r}; accepted schemes: {accepted}"
    )
