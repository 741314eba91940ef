"""The dashboard of a queue over two real beanstalkd servers: the overview's per-server table
(each server's counts, a server down with the id its jobs' records name), and job pages that
say which server holds a job (ids are each server's own)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kqueue import KQueue
from kqueue.dashboard import create_app
from kqueue.dashboard.views import each_server, overview
from kqueue.stores.base import iter_records
from tests.bond.conftest import addresses, id_of, ready_on
from tests.conftest import _spawn
from tests.servers import BeanstalkdProcess


@pytest.fixture
def pair() -> Iterator[list[BeanstalkdProcess]]:
    """Two real beanstalkd processes."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(contextlib.contextmanager(_spawn)()) for _ in range(2)]


@pytest.fixture
def bonded(pair: list[BeanstalkdProcess], tmp_path: Path) -> Iterator[KQueue]:
    with KQueue(servers=addresses(pair), bulk_store=f"sqlite:///{tmp_path / 's.db'}") as queue:
        yield queue


def _row(html: str, address: str) -> str:
    row = re.search(rf'<tr data-server="{re.escape(address)}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row for {address}"
    return row.group(1)


def test_the_overview_has_a_row_per_server(pair: list[BeanstalkdProcess], bonded: KQueue) -> None:
    bonded.add_jobs("email", range(5))  # one batch: one server
    bonded.add_job("email", 5)  # the other
    view = overview(bonded)
    assert [s.address for s in view.each_server] == addresses(pair)
    assert [s.stats["current-jobs-ready"] for s in view.each_server] == [
        ready_on(broker, "kq-email") for broker in pair
    ]
    with TestClient(create_app(bonded, refresh=0, sample_every=0)) as browser:
        page = browser.get("/").text
    for broker, address in zip(pair, addresses(pair), strict=True):
        row = _row(page, address)
        assert id_of(broker) in row and "up" in row
        assert f"<td>{ready_on(broker, 'kq-email')}</td>" in row


def test_a_server_down_shows_the_id_its_jobs_name(
    pair: list[BeanstalkdProcess], bonded: KQueue
) -> None:
    bonded.add_jobs("email", range(4))
    bonded.add_job("email", 4)
    bonded.sweep(grace=0)  # recovery sees both servers answer
    gone_id, gone_at = id_of(pair[1]), addresses(pair)[1]
    pair[1].kill()
    views = {s.address: s for s in each_server(bonded)}
    assert not views[gone_at].up and views[gone_at].stats == {"id": f"last seen as {gone_id}"}
    with TestClient(create_app(bonded, refresh=0, sample_every=0)) as browser:
        row = _row(browser.get("/").text, gone_at)
        assert "down" in row and gone_id in row
        assert bonded.store is not None
        waiting = next(r for r in iter_records(bonded.store) if r.ref.server_id == gone_id)  # type: ignore[union-attr]
        page = browser.get("/job", params={"target": waiting.key}).text
    assert "awaiting recovery" in page
    assert f"id {gone_id}, last seen at {gone_at}" in page


def test_a_job_page_names_the_server_holding_it(
    pair: list[BeanstalkdProcess], bonded: KQueue
) -> None:
    assert [bonded.add_job("email", n) for n in range(2)] == [1, 1]  # id 1 on each server
    assert bonded.store is not None
    by_server = {id_of(b): a for b, a in zip(pair, addresses(pair), strict=True)}
    with TestClient(create_app(bonded, refresh=0, sample_every=0)) as browser:
        for record in iter_records(bonded.store):
            assert record.ref is not None
            page = browser.get("/job", params={"target": record.key}).text
            assert f"<dd>{by_server[record.ref.server_id]}</dd>" in page
            assert "ready" in page
        by_id = browser.get("/job", params={"target": "1"}).text
    assert "same id also on" in by_id
    assert all(address in by_id for address in addresses(pair))
