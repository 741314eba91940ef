"""Opening stores by URL, and keeping passwords out of what we print."""

from __future__ import annotations

import pytest

from kqueue.errors import ConfigurationError, KQueueError
from kqueue.stores import MemoryStore, open_store, redact_url
from kqueue.stores.redis import RedisStore
from kqueue.stores.sql import SQLStore
from kqueue.stores.url import scrub


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:secret@host/2", "redis://user:***@host/2"),
        ("rediss://u:se%40cr%2Fet@h:6380/1", "rediss://u:***@h:6380/1"),
        ("unix://:secret@/run/redis.sock?db=3", "unix://:***@/run/redis.sock?db=3"),
        ("redis://host/0?password=secret&db=1", "redis://host/0?password=***&db=1"),
        (
            "postgresql+psycopg://app:secret@db:5432/jobs",
            "postgresql+psycopg://app:***@db:5432/jobs",
        ),
        ("mysql://root@127.0.0.1/test", "mysql://root@127.0.0.1/test"),
        ("sqlite:///var/lib/kqueue.sqlite3", "sqlite:///var/lib/kqueue.sqlite3"),
        ("sqlite://", "sqlite://"),
        ("memory://", "memory://"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("url", "store_type"),
    [
        ("memory://", MemoryStore),
        ("redis://127.0.0.1:6379/0", RedisStore),
        ("rediss://:pw@127.0.0.1:6380/1", RedisStore),
        ("unix://:pw@/tmp/redis.sock?db=2", RedisStore),
        ("sqlite://", SQLStore),
        ("sqlite:///tmp/kq.sqlite3", SQLStore),
        ("postgresql://u:pw@127.0.0.1/db", SQLStore),
        ("postgresql+psycopg://u:pw@127.0.0.1/db", SQLStore),
        ("postgres://u:pw@127.0.0.1/db", SQLStore),
        ("mysql://root@127.0.0.1/db", SQLStore),
        ("mysql+pymysql://root@127.0.0.1/db", SQLStore),
        ("mariadb://root@127.0.0.1/db", SQLStore),
    ],
)
def test_open_store_picks_the_store_from_the_scheme_without_connecting(
    url: str, store_type: type
) -> None:
    with open_store(url) as store:  # type: ignore[attr-defined]
        assert type(store) is store_type


@pytest.mark.parametrize(
    ("url", "dialect", "driver"),
    [
        ("postgresql://u@127.0.0.1/db", "postgresql", "psycopg"),
        ("postgres://u@127.0.0.1/db", "postgresql", "psycopg"),
        ("mysql://root@127.0.0.1/db", "mysql", "pymysql"),
        ("mariadb://root@127.0.0.1/db", "mariadb", "pymysql"),
        ("sqlite://", "sqlite", "pysqlite"),
    ],
)
def test_plain_sql_urls_use_the_bundled_drivers(url: str, dialect: str, driver: str) -> None:
    with SQLStore(url) as store:
        assert (store.engine.dialect.name, store.engine.dialect.driver) == (dialect, driver)


@pytest.mark.parametrize("url", ["ftp://u:secret@host/x", "secret-host:6379", "mongodb://h/db"])
def test_open_store_rejects_an_unknown_scheme_and_names_the_accepted_ones(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "redis://" in message
    assert "sqlite://" in message
    assert "memory://" in message
    assert "postgresql://" in message
    assert "secret" not in message.replace("secret-host", "")


def test_stores_package_exports_exactly_its_public_names() -> None:
    import kqueue.stores

    public = {name for name in dir(kqueue.stores) if not name.startswith(("_", "@"))}
    public |= {"RedisStore", "SQLStore"}  # loaded on first access
    modules = {
        "base",
        "memory",
        "url",
        "registry",
        "redis",
        "sql",
        "annotations",
        "Any",
        "TYPE_CHECKING",
    }
    assert set(kqueue.stores.__all__) == public - modules
    for name in kqueue.stores.__all__:
        assert getattr(kqueue.stores, name) is not None


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa/ss@127.0.0.1:1/0",
        "redis://user:pa?ss@127.0.0.1:1/0",
        "redis://user:pa#ss@127.0.0.1:1/0",
        "redis://:p:a/ss@127.0.0.1:1/0",
        "postgresql+psycopg://user:pa/ss@127.0.0.1:1/db",
        "mysql+pymysql://user:pa#ss@127.0.0.1:1/db",
    ],
)
def test_a_password_with_unencoded_reserved_characters_never_shows(url: str) -> None:
    password = url.split("://")[1].rsplit("@", 1)[0].split(":", 1)[1]
    assert password not in redact_url(url)
    assert password not in scrub(f"driver said: {password} is wrong", url)
    with pytest.raises(KQueueError) as caught:  # never a bare ValueError from the driver
        store = open_store(url)
        try:
            store.count()
        finally:
            store.close()
    assert password not in str(caught.value)
    for part in password.replace("/", " ").replace("?", " ").replace("#", " ").split():
        if len(part) > 2:
            assert part not in str(caught.value)


def test_an_at_sign_in_the_query_is_not_taken_for_a_password() -> None:
    url = "redis://127.0.0.1:6379/0?client_name=a@b"
    assert redact_url(url) == url
