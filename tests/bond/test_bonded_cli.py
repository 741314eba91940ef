"""The command line on several servers: a comma-separated --beanstalkd, and job ids shown
with the server that holds them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kqueue import KQueue
from kqueue.beanstalk.connection import BeanstalkConnection
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


def test_put_and_show_say_which_server_took_a_job(
    trio: list[BeanstalkdProcess],
    make_bonded: Callable[..., KQueue],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path}/jobs.sqlite3"
    for broker in trio[1:]:  # ids 1 to 3 taken on the other servers: ids alone are ambiguous
        conn = BeanstalkConnection(broker.host, broker.port)
        for _ in range(3):
            conn.put(b"other", priority=0, delay=0, ttr=60)
        conn.close()
    flags = ["--beanstalkd", ",".join(addresses(trio)), "--store", store]
    by_id = {id_of(broker): f"{broker.host}:{broker.port}" for broker in trio}
    for _ in range(3):
        assert main(["put", "mail", '"x"', *flags]) == 0
        out = capsys.readouterr().out.strip()
        words = out.split()
        assert words[0] == "id" and words[2] == "on" and words[4] == "key", out
        address, key = words[3], words[5]
        queue = make_bonded(bulk_store=store)
        assert queue.store is not None
        record = queue.store.get(key)
        assert record is not None and record.ref is not None
        assert by_id[record.ref.server_id] == address
        assert record.ref.job_id == int(words[1])
        assert main(["show", key, *flags]) == 0
        assert f"server    {address}" in capsys.readouterr().out
