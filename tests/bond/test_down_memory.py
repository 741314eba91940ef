"""A sweeper that never saw a server of a bonded queue go down still waits for it: the store
keeps at which address each server id was last seen answering, and when (real beanstalkd
processes and a SQLite file shared by the processes)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kqueue import KQueue
from kqueue import sweeper as sweeper_module
from kqueue.cli import main
from kqueue.stores.base import iter_records
from kqueue.stores.sql import SQLStore
from kqueue.sweeper import RecoverySweeper
from tests.bond.conftest import addresses, id_of, ready_on
from tests.conftest import _spawn
from tests.servers import BeanstalkdProcess, wait_for

TUBE = "kq-mail"
GRACE = 2.0


@pytest.fixture
def pair() -> Iterator[list[BeanstalkdProcess]]:
    """Two real beanstalkd processes."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(contextlib.contextmanager(_spawn)()) for _ in range(2)]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _queue(pair: list[BeanstalkdProcess], store_url: str) -> KQueue:
    return KQueue(servers=addresses(pair), bulk_store=store_url, server_down_grace=GRACE)


def _filled(pair: list[BeanstalkdProcess], store_url: str) -> int:
    """Six jobs over both servers, a pass that saw both answer; the jobs on the second."""
    with _queue(pair, store_url) as first:
        for n in range(6):
            first.add_job("mail", n)
        assert first.sweep(grace=0).requeued == 0
    return ready_on(pair[1], TUBE)


def test_a_fresh_queue_waits_the_grace_for_a_server_another_pass_saw(
    pair: list[BeanstalkdProcess], store_url: str
) -> None:
    on_second = _filled(pair, store_url)
    seen = SQLStore(store_url).servers_seen()[id_of(pair[1])]
    assert seen.address == addresses(pair)[1]
    pair[1].kill()
    killed = time.time()
    with _queue(pair, store_url) as fresh:  # no memory of the second server
        assert fresh.sweep(grace=0).requeued == 0
        assert ready_on(pair[0], TUBE) == 6 - on_second
        time.sleep(max(0.0, seen.seen_at + GRACE - time.time()) + 0.1)
        assert time.time() - killed < GRACE + 1.0
        assert fresh.sweep(grace=0).requeued == on_second  # past the grace: onto the first
    assert ready_on(pair[0], TUBE) == 6


def test_a_server_back_empty_at_its_address_is_not_waited_for(
    pair: list[BeanstalkdProcess], store_url: str
) -> None:
    on_second = _filled(pair, store_url)
    pair[1].restart(binlog_dir=False)
    with _queue(pair, store_url) as fresh:
        assert fresh.sweep(grace=0).requeued == on_second  # restarted: put back at once
    assert ready_on(pair[0], TUBE) + ready_on(pair[1], TUBE) == 6


def test_a_fresh_background_sweeper_waits_then_moves(
    pair: list[BeanstalkdProcess], store_url: str
) -> None:
    on_second = _filled(pair, store_url)
    pair[1].kill()
    with (
        _queue(pair, store_url) as fresh,
        RecoverySweeper(fresh, interval=0.2, grace=0) as sweeper,
    ):
        assert wait_for(lambda: sweeper.passes >= 2, timeout=5)
        assert sweeper.totals["requeued"] == 0
        assert wait_for(lambda: sweeper.totals["requeued"] == on_second, timeout=GRACE + 5)
    assert ready_on(pair[0], TUBE) == 6


def test_a_sweep_in_a_new_process_waits_for_the_server_down(
    pair: list[BeanstalkdProcess], store_url: str, tmp_path: Path
) -> None:
    on_second = _filled(pair, store_url)
    (tmp_path / "downapp.py").write_text(
        "from kqueue import KQueue\n"
        f"queue = KQueue(servers={addresses(pair)!r}, bulk_store={store_url!r},"
        " server_down_grace=3600)\n"
    )
    pair[1].kill()
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "kqueue", "sweep", "downapp:queue", "--grace", "0", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"requeued": 0' in done.stdout
    assert ready_on(pair[0], TUBE) == 6 - on_second


def test_stats_and_peek_say_where_a_silent_server_id_lived(
    pair: list[BeanstalkdProcess], store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _filled(pair, store_url)
    silent_id, silent_at = id_of(pair[1]), addresses(pair)[1]
    pair[1].kill()
    flags = ["--beanstalkd", ",".join(addresses(pair)), "--store", store_url]
    with _queue(pair, store_url) as queue:
        stats = queue.stats()
        assert stats.server_ids is not None and stats.server_ids[silent_id] == silent_at
        assert queue.store is not None
        waiting = [r for r in iter_records(queue.store) if r.ref and r.ref.server_id == silent_id]
    assert main(["stats", *flags]) == 0
    out = capsys.readouterr().out
    assert f"server {silent_at}: not answering" in out
    assert f"last seen as id {silent_id}" in out
    assert main(["stats", "--json", *flags]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["server_ids"][silent_id] == silent_at
    assert "error" in shown["servers"][silent_at]
    assert main(["peek", waiting[0].key, *flags]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["server_id"], shown["server_last_seen_at"]) == (silent_id, silent_at)


def test_a_background_sweeper_notes_the_servers_between_passes(
    pair: list[BeanstalkdProcess], store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeper_module, "NOTE_EVERY", 0.1)
    store = SQLStore(store_url)
    with (
        _queue(pair, store_url) as queue,
        RecoverySweeper(queue, interval=3600) as sweeper,
    ):
        assert wait_for(lambda: id_of(pair[1]) in store.servers_seen(), timeout=5)
        first = store.servers_seen()[id_of(pair[1])].seen_at
        assert wait_for(
            lambda: store.servers_seen()[id_of(pair[1])].seen_at > first + 0.3, timeout=5
        )
        assert sweeper.passes == 1  # noted without a pass
    store.close()
