"""PostgreSQL with several hosts: psycopg's multi-host connection string through SQLAlchemy
(``?host=h1:5432&host=h2:5432&target_session_attrs=read-write``); the store connects to the
first host that answers and accepts writes."""

from __future__ import annotations

import pytest
import sqlalchemy

from kqueue.errors import StoreConnectionError
from kqueue.stores import open_store
from tests.contract.records import make_record
from tests.servers import free_port


def _multi_host(url: str, *hosts: str, attrs: str = "read-write") -> str:
    parsed = sqlalchemy.make_url(url)
    multi = parsed.set(host=None, port=None).update_query_pairs(
        [*(("host", host) for host in hosts), ("target_session_attrs", attrs)]
    )
    return multi.render_as_string(hide_password=False)


def _server(url: str) -> str:
    parsed = sqlalchemy.make_url(url)
    return f"{parsed.host}:{parsed.port or 5432}"


def test_the_store_skips_an_unreachable_first_host(postgres_url: str) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    store = open_store(_multi_host(postgres_url, closed, _server(postgres_url)))
    store.put_many([make_record("a")])
    record = store.get("a")
    assert record is not None and record.payload == make_record("a").payload
    store.close()


def test_no_reachable_host_is_a_connection_error(postgres_url: str) -> None:
    store = open_store(_multi_host(postgres_url, f"127.0.0.1:{free_port()}"))
    with pytest.raises(StoreConnectionError):
        store.count()
    store.close()


def test_target_session_attrs_reaches_psycopg(postgres_url: str) -> None:
    # The only server is a primary: asking for a standby finds none (so the attribute is
    # honoured, and read-write above picks a primary among several hosts the same way).
    store = open_store(_multi_host(postgres_url, _server(postgres_url), attrs="standby"))
    with pytest.raises(StoreConnectionError, match="standby"):
        store.count()
    store.close()
