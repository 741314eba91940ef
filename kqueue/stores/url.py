"""Store URLs: their scheme, and the credentials in them kept out of sight.

Which store a URL opens is :mod:`kqueue.stores.registry`'s business.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from kqueue.errors import ConfigurationError

REDACTED = "***"
"""What a password is replaced with in :func:`redact_url`."""

_SECRET_QUERY_NAMES = frozenset({"password", "passwd", "pwd", "secret", "token", "sslpassword"})


def redact_url(url: str) -> str:
    """``url`` with its password (in the user info or the query string) replaced by ``***``.

    Everything else is kept as written. Safe for logs, reprs and error messages; never raises.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if unencoded_userinfo(url):
        # The password holds an unencoded / ? or #, which ends the authority early: hide
        # everything between the first colon and the last @ (more than needed, never less).
        at = rest.rindex("@")
        return redact_url(f"{scheme}://{rest[:at].partition(':')[0]}:{REDACTED}@{rest[at + 1 :]}")
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


def unencoded_userinfo(url: str) -> bool:
    """True when the user info of ``url`` holds an unencoded ``/``, ``?`` or ``#`` (a password
    such as ``pa/ss``): parsers then read part of the password as the host or the path."""
    _scheme, sep, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    if not sep or "@" in rest[:cut] or "@" not in rest[cut:]:
        return False
    # What comes before the first / ? # is either host:port (an @ later is in the path or
    # the query: fine) or user:start-of-password (cut short by the unencoded character).
    host, colon, port = rest[:cut].rpartition(":")
    return bool(colon) and not (host and port.isdigit())


def _secrets(url: str) -> set[str]:
    """Every password in ``url``, as written and percent-decoded."""
    found: set[str] = set()
    if unencoded_userinfo(url):
        rest = url.partition("://")[2]
        found.add(rest[: rest.rindex("@")].partition(":")[2])
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


PREFIX_PARAMETER = "prefix"
"""The query parameter of a store URL that kqueue reads itself (never the driver): the key
prefix of a Redis store, the table name prefix of a SQL store."""


def split_prefix(url: str) -> tuple[str, str | None]:
    """``url`` without its ``prefix=`` query parameter, and that parameter's value (or None).

    ``redis://host/0?prefix=myapp:`` gives ``("redis://host/0", "myapp:")``; every other
    parameter stays in the URL for the driver. ConfigurationError for an empty or repeated
    prefix, naming the URL with its credentials redacted.
    """
    head, question, query = url.partition("?")
    if not question:
        return url, None
    query, hash_mark, fragment = query.partition("#")
    kept: list[str] = []
    found: list[str] = []
    for pair in query.split("&"):
        name, _equals, value = pair.partition("=")
        if unquote(name) == PREFIX_PARAMETER:
            found.append(unquote(value))
        elif pair:
            kept.append(pair)
    if not found:
        return url, None
    if len(found) > 1 or not found[0]:
        raise ConfigurationError(
            f"store URL {redact_url(url)!r}: give one non-empty {PREFIX_PARAMETER}="
        )
    rest = "&".join(kept)
    clean = head + ("?" + rest if rest else "") + (hash_mark + fragment if hash_mark else "")
    return clean, found[0]


REDIS_SCHEMES = ("redis", "rediss", "unix")
"""URL schemes of :class:`~kqueue.stores.redis.RedisStore`."""
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
"""URL schemes of :class:`~kqueue.stores.sql.SQLStore` (each may carry a ``+driver``)."""
