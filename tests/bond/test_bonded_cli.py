"""The command line on several servers: a comma-separated --beanstalkd, and job ids shown
with the server that holds them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kqueue import KQueue
from kqueue.cli import main
from kqueue.stores.base import iter_records
from tests.bond.conftest import addresses, id_of
from tests.servers import BeanstalkdProcess


def test_peek_says_which_server_holds_a_job(
    trio: list[BeanstalkdProcess],
    make_bonded: Callable[..., KQueue],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path}/jobs.sqlite3"
    queue = make_bonded(bulk_store=store)
    assert [queue.add_job("mail", n) for n in range(3)] == [1, 1, 1]  # one id per server
    flags = ["--beanstalkd", ",".join(addresses(trio)), "--store", store]

    assert main(["peek", "1", *flags]) == 0
    shown = json.loads(capsys.readouterr().out)
    others = set(addresses(trio)) - {shown["server"]}
    assert set(shown["same_id_also_on"]) == others

    assert queue.store is not None
    by_id = {id_of(broker): f"{broker.host}:{broker.port}" for broker in trio}
    for record in iter_records(queue.store):
        assert main(["peek", record.key, *flags]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert record.ref is not None
        assert shown["server"] == by_id[record.ref.server_id]
        assert shown["key"] == record.key
