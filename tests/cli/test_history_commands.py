"""``kqueue show KEY`` and ``kqueue buried``: a job's failed attempts, as the store keeps them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kqueue import Job, JobFailedError, KQueue, RetryPolicy
from tests.cli.conftest import Result
from tests.servers import BeanstalkdProcess

Cli = Callable[..., Result]
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _bury_one(beanstalkd: BeanstalkdProcess, store: str) -> tuple[str, str]:
    """The keys of a job that failed twice and was buried, and of one done, its result kept."""

    def broken(job: Job) -> None:
        raise KeyError(f"user {job.data['user']} attempt {job.attempts}")

    policy = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0, jitter=False)
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as queue:
        queue.add_handler("sync", broken, retry=policy)

        @queue.task("report", keep_result=600)
        def report(month: str) -> str:
            return f"report {month}"

        done = report.add(month="2026-11")
        queue.add_job("sync", {"user": 7})
        queue.run_jobs(time_limit_ms=0)
        assert queue.store is not None
        (record,) = [r for r in queue.store.scan() if r.job_type == "sync"]
        return record.key, done.key


def test_show_prints_every_failed_attempt_with_its_worker_and_traceback(
    cli: Cli, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    key, _ = _bury_one(beanstalkd, store)
    shown = cli("show", key, store=store)
    assert shown.code == 0
    assert "status    buried" in shown.out
    assert "failures  2 kept" in shown.out
    assert f"{WORKER}  attempt 1  builtins.KeyError: 'user 7 attempt 1'" in shown.out
    assert f"{WORKER}  attempt 2  builtins.KeyError: 'user 7 attempt 2'" in shown.out
    assert "in broken" in shown.out  # the traceback's end
    report = json.loads(cli("show", key, "--json", store=store).out)
    assert report["status"] == "buried"
    assert report["job"]["payload"] == {"user": 7}
    assert [f["attempt"] for f in report["failures"]] == [1, 2]
    assert "raise KeyError" in report["failures"][0]["traceback"]


def test_show_prints_the_kept_result_of_a_finished_job(
    cli: Cli, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    _, done = _bury_one(beanstalkd, store)
    shown = cli("show", done, store=store)
    assert "status    done" in shown.out
    assert "result    done: report 2026-11" in shown.out


def test_show_of_an_unknown_key_is_exit_1_and_of_a_bad_one_exit_2(cli: Cli, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    assert cli("show", "0" * 32, store=store).code == 1
    assert cli("show", "nope", store=store).code == 2


def test_buried_shows_when_and_where_the_last_attempt_failed(
    cli: Cli, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    key, _ = _bury_one(beanstalkd, store)
    listed = cli("buried", "sync", store=store)
    assert "last_failed" in listed.out and "worker" in listed.out
    (row,) = [line for line in listed.out.splitlines() if line.startswith(key)]
    assert WORKER in row and "UTC" in row and "KeyError" in row
    history = cli("buried", "sync", "--history", store=store).out
    assert f"{key}: 2 failed attempt(s) kept" in history
    assert history.count("builtins.KeyError") == 2


def test_a_worker_process_runs_tasks_by_their_default_names_and_keeps_results(
    spawn_kqueue: Callable[..., subprocess.Popen[str]],
    beanstalkd: BeanstalkdProcess,
    tmp_path: Path,
) -> None:
    from tests.cli import task_app

    store = f"sqlite:///{tmp_path}/s.sqlite3"
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as producer:
        # The producer registers the same functions: the same default job types.
        greet = producer.task(keep_result=600)(task_app.greet.func)
        divide = producer.task(keep_result=600)(task_app.divide.func)
        assert greet.job_type == "tests.cli.task_app.greet"
        hello, broken = greet.add(name="ada"), divide.add(a=1, b=0)
        worker = spawn_kqueue("worker", "tests.cli.task_app:queue", "--burst", "--store", store)
        assert worker.wait(60) == 0, worker.communicate()[1]
        assert hello.result(timeout=10) == "hello ada!"
        with pytest.raises(JobFailedError, match="ZeroDivisionError"):
            broken.result(timeout=10)
        (failure,) = broken.failures()
        assert failure.worker.endswith(f":{worker.pid}")  # the worker process, not this one
