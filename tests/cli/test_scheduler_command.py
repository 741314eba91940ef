"""``kqueue scheduler`` and ``kqueue worker --scheduler`` as real processes.

The application's schedule ticks every minute, so the tick of the current minute is on time
when a scheduler starts (the default grace is a minute): its job comes at once, and no test
waits for a clock to turn.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from kqueue.stores.sql import SQLStore
from tests.cli.conftest import Result
from tests.servers import wait_for

Spawn = Callable[..., subprocess.Popen[str]]


def ran(out_file: Path) -> list[object]:
    if not out_file.exists():
        return []
    return [json.loads(line) for line in out_file.read_text().splitlines()]


def test_scheduler_adds_the_job_of_the_current_tick_and_stops_on_sigint(
    spawn_kqueue: Spawn, sqlite_url: str
) -> None:
    scheduler = spawn_kqueue("scheduler", "tests.cli.app:scheduled", "--store", sqlite_url)
    with SQLStore(sqlite_url) as store:
        assert wait_for(lambda: store.count("record") >= 1, timeout=30)
        scheduler.send_signal(signal.SIGINT)
        out, err = scheduler.communicate(timeout=30)
        assert scheduler.returncode == 0, err
        assert "scheduler: record (* * * * * UTC)" in out
        assert "scheduler stopped after" in out
        assert "periodic record: tick" in err  # its INFO line


def test_worker_with_scheduler_runs_the_periodic_job_itself(
    spawn_kqueue: Spawn, sqlite_url: str, out_file: Path
) -> None:
    worker = spawn_kqueue("worker", "tests.cli.app:scheduled", "--scheduler", "--store", sqlite_url)
    assert wait_for(lambda: {"periodic": True} in ran(out_file), timeout=30)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def test_scheduler_of_an_application_without_schedules_fails_in_one_line(
    cli: Callable[..., Result], sqlite_url: str
) -> None:
    result = cli("scheduler", "tests.cli.app:queue", store=sqlite_url)
    assert result.code == 2  # a configuration error
    assert "declares no periodic jobs" in result.err
