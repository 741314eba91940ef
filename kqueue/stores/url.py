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

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

    Safe for logs, reprs and error messages; never raises, even on a malformed URL.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if sep else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in _SECRET_QUERY_NAMES for name, _ in pairs):
            query = urlencode(
                [
                    (name, REDACTED if name.lower() in _SECRET_QUERY_NAMES else value)
                    for name, value in pairs
                ],
                safe="*",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_password(url: str) -> str | None:
    """The password in ``url``'s user info, to scrub from driver messages; None if none."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def scrub(message: str, url: str) -> str:
    """``message`` with any occurrence of ``url``'s password replaced by ``***``."""
    password = url_password(url)
    if password:
        message = message.replace(password, REDACTED)
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
