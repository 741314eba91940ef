"""Retiring one server of a bonded queue: its jobs move to the others through their records,
a job a worker holds is left to it, and nothing runs twice or is lost."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kqueue import ConfigurationError, KQueue
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.cli import main
from kqueue.stores.base import iter_records
from tests.bond.conftest import addresses, id_of, ready_on
from tests.servers import BeanstalkdProcess

TUBE = "kq-mail"


def test_a_drained_server_holds_nothing_and_every_job_runs_once(
    trio: list[BeanstalkdProcess],
    make_bonded: Callable[..., KQueue],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path}/jobs.sqlite3"
    queue = make_bonded(bulk_store=store)
    for n in range(30):
        queue.add_job("mail", n)
    queue.add_job("mail", "later", delay=3600)  # delayed jobs move too, still delayed
    holder = BeanstalkConnection(trio[0].host, trio[0].port)  # a worker running one job there
    holder.watch(TUBE)
    running = holder.reserve(1)
    assert running is not None
    gone = addresses(trio)[0]

    flags = ["--beanstalkd", ",".join(addresses(trio)), "--store", store, "--json"]
    assert main(["drain-server", gone, *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["moved"], report["running"], report["unmoved"]) == (10, 1, 0)
    assert ready_on(trio[0], TUBE) == 0
    assert ready_on(trio[1], TUBE) + ready_on(trio[2], TUBE) == 29

    # The worker that held one hands it back (it was stopped): a second drain moves it.
    holder.release(running.id, priority=running_priority(holder, running.id), delay=0)
    holder.close()
    assert main(["drain-server", gone, *flags]) == 0
    assert json.loads(capsys.readouterr().out)["moved"] == 1

    remaining = KQueue(servers=addresses(trio)[1:], bulk_store=store)
    seen: list[object] = []
    remaining.add_handler("mail", lambda job: seen.append(job.data))
    try:
        assert remaining.run_jobs(count_limit=30, time_limit_ms=5000) == 30
    finally:
        remaining.close()
    assert sorted(seen) == list(range(30))  # type: ignore[type-var]
    assert queue.store is not None
    left = list(iter_records(queue.store))
    assert [r.delay for r in left] == [3600]  # the delayed one, on a server left
    assert left[0].ref is not None
    assert left[0].ref.server_id in {id_of(trio[1]), id_of(trio[2])}


def running_priority(conn: BeanstalkConnection, job_id: int) -> int:
    stats = conn.stats_job(job_id)
    assert stats is not None
    return stats["pri"]


def test_draining_needs_one_of_the_servers_and_another(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    queue = make_bonded(bulk_store="sqlite://")
    with pytest.raises(ConfigurationError, match="not one of"):
        queue.drain_server("127.0.0.1:1")
    alone = KQueue(host=trio[0].host, port=trio[0].port, bulk_store="sqlite://")
    try:
        with pytest.raises(ConfigurationError, match="no other server"):
            alone.drain_server(addresses(trio)[0])
    finally:
        alone.close()
