"""``kqueue worker`` as a real process: burst runs, signals, several processes, metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import greenstalk

from kqueue import KQueue
from tests.servers import BeanstalkdProcess, free_port

Spawn = Callable[..., subprocess.Popen[str]]


def ran(out_file: Path) -> list[object]:
    if not out_file.exists():
        return []
    return [json.loads(line) for line in out_file.read_text().splitlines()]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def producer(beanstalkd: BeanstalkdProcess) -> KQueue:
    return KQueue(host=beanstalkd.host, port=beanstalkd.port)


def test_burst_worker_runs_what_is_ready_and_exits_0(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    with producer(beanstalkd) as queue:
        for i in range(5):
            queue.add_job("record", {"i": i})
    worker = spawn_kqueue("worker", "tests.cli.app:queue", "--burst")
    assert worker.wait(30) == 0
    assert ran(out_file) == [{"i": i} for i in range(5)]


def test_worker_serves_only_the_job_types_asked_for(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    with producer(beanstalkd) as queue:
        queue.add_job("record", "r")
        queue.add_job("slow", {"seconds": 0})
        worker = spawn_kqueue(
            "worker", "tests.cli.app:make_queue", "--burst", "--jobtypes", "record"
        )
        assert worker.wait(30) == 0
        assert ran(out_file) == ["r"]
        assert queue.stats().job_types["slow"]["current-jobs-ready"] == 1


def test_worker_with_a_bad_import_path_fails_in_one_line(spawn_kqueue: Spawn) -> None:
    for app, message in [
        ("no_such_module:queue", "cannot import"),
        ("tests.cli.app:missing", "has no 'missing'"),
        ("tests.cli.app:not_a_queue", "not a kqueue.KQueue"),
        ("tests.cli.app", "not MODULE:ATTRIBUTE"),
    ]:
        worker = spawn_kqueue("worker", app)
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 2, err
        assert message in err
        assert err.strip().count("\n") == 0, err


def test_sigterm_lets_the_running_job_finish_then_exits_0(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    worker = spawn_kqueue("worker", "tests.cli.app:queue")
    with producer(beanstalkd) as queue:
        queue.add_job("slow", {"seconds": 1})
        queue.add_job("record", "queued behind")
        wait_until(lambda: len(ran(out_file)) == 1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        assert ran(out_file) == [{"started": {"seconds": 1}}, {"seconds": 1}]
        stats = queue.stats().job_types
        assert "slow" not in stats  # done and deleted: the empty tube is gone
        assert stats["record"]["current-jobs-ready"] == 1  # not taken: nothing lost


def test_second_signal_stops_at_once_and_releases_the_job(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    worker = spawn_kqueue("worker", "tests.cli.app:queue")
    with producer(beanstalkd) as queue:
        job_id = queue.add_job("slow", {"seconds": 20})
        wait_until(lambda: len(ran(out_file)) == 1)
        worker.send_signal(signal.SIGTERM)  # signals are handled in order: graceful first
        started = time.monotonic()
        worker.send_signal(signal.SIGINT)
        assert worker.wait(10) == 3
        assert time.monotonic() - started < 5
        with greenstalk.Client(beanstalkd.address) as client:
            assert client.stats_job(job_id)["state"] == "ready"


def test_grace_period_over_stops_the_handler_and_releases_the_job(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    worker = spawn_kqueue("worker", "tests.cli.app:queue", "--grace", "0.5")
    with producer(beanstalkd) as queue:
        job_id = queue.add_job("slow", {"seconds": 20})
        wait_until(lambda: len(ran(out_file)) == 1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 3
        with greenstalk.Client(beanstalkd.address) as client:
            assert client.stats_job(job_id)["state"] == "ready"


def test_several_processes_share_the_work_and_stop_together(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    supervisor = spawn_kqueue("worker", "tests.cli.app:queue", "--processes", "2")
    with producer(beanstalkd) as queue:
        wait_until(lambda: queue.stats().job_types.get("record", {}).get("current-watching") == 2)
        for i in range(40):
            queue.add_job("record", i)
        wait_until(lambda: len(ran(out_file)) == 40)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(15) == 0
    assert sorted(ran(out_file)) == list(range(40))  # type: ignore[type-var]


def test_metrics_port_serves_prometheus_counters_and_depths(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    port = free_port()
    worker = spawn_kqueue("worker", "tests.cli.app:queue", "--metrics-port", str(port))
    with producer(beanstalkd) as queue:
        queue.add_job("record", 1)
        queue.add_job("failing", 2)
        queue.add_job("slow", {"seconds": 0}, delay=300)
        wait_until(lambda: len(ran(out_file)) == 1)
        scraped: list[str] = []

        def counted_both() -> bool:
            url = f"http://127.0.0.1:{port}/metrics"
            scraped.append(urllib.request.urlopen(url, timeout=5).read().decode())
            return 'kqueue_jobs_total{event="buried"} 1.0' in scraped[-1]

        wait_until(counted_both)
    body = scraped[-1]
    assert 'kqueue_jobs_total{event="completed"} 1.0' in body
    assert 'kqueue_jobs_total{event="buried"} 1.0' in body
    assert 'kqueue_queue_depth{job_type="slow",state="delayed"} 1.0' in body
    assert 'kqueue_handler_seconds_count{job_type="record"} 1.0' in body
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_log_json_writes_one_json_object_per_line(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess
) -> None:
    with producer(beanstalkd) as queue:
        queue.add_job("failing", {"x": 1})
    worker = spawn_kqueue("worker", "tests.cli.app:queue", "--burst", "--log-json")
    _, err = worker.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines()]
    buried = [entry for entry in lines if "buried" in entry["message"]]
    assert buried and buried[0]["level"] == "error"
    assert "type=failing" in buried[0]["message"]


def test_worker_and_commands_over_redis_and_postgresql_stores(
    spawn_kqueue: Spawn,
    beanstalkd: BeanstalkdProcess,
    out_file: Path,
    redis_url: str,
    redis_prefix: str,
    postgres_url: str,
) -> None:
    # The shared Redis holds other tests' records: this test's own key prefix, in the URL.
    for store in (f"{redis_url}?prefix={redis_prefix}", postgres_url):
        payload = json.dumps({"via": store.split(":")[0]})
        put = spawn_kqueue("put", "record", payload, "--store", store)
        assert put.wait(30) == 0
        stats = spawn_kqueue("stats", "--json", "--store", store)
        out, _ = stats.communicate(timeout=30)
        (row,) = json.loads(out)["job_types"]
        assert (row["ready"], row["stored"]) == (1, 1)
        worker = spawn_kqueue("worker", "tests.cli.app:queue", "--burst", "--store", store)
        assert worker.wait(30) == 0
        stats = spawn_kqueue("stats", "--json", "--store", store)
        out, _ = stats.communicate(timeout=30)
        assert json.loads(out)["job_types"] == []
    assert ran(out_file) == [{"via": "redis"}, {"via": "postgresql+psycopg"}]


def test_ctrl_c_on_a_process_group_stops_every_child_gracefully(
    beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    import os
    import sys

    from tests.cli.conftest import ROOT

    env = dict(os.environ, KQ_TEST_OUT=str(out_file), PYTHONPATH=str(ROOT))
    env["KQUEUE_BEANSTALKD"] = f"{beanstalkd.host}:{beanstalkd.port}"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "kqueue", "worker", "tests.cli.app:queue", "--processes", "2"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, as a shell job would have
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with producer(beanstalkd) as queue:
            wait_until(
                lambda: queue.stats().job_types.get("record", {}).get("current-watching") == 2
            )
        os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert supervisor.wait(15) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        supervisor.communicate()
