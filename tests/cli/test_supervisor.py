"""``kqueue worker --processes N``: children that die are started again, the metrics of every
child are served once by the parent, and the store URL never shows in a child's command."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from kqueue import KQueue
from tests.servers import BeanstalkdProcess, free_port, wait_for

Spawn = Callable[..., subprocess.Popen[str]]


def _watching(queue: KQueue, job_type: str) -> int:
    return queue.stats().job_types.get(job_type, {}).get("current-watching", 0)


def _lines(out_file: Path) -> list[str]:
    return out_file.read_text().splitlines() if out_file.exists() else []


def test_a_child_that_dies_is_started_again(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    supervisor = spawn_kqueue("worker", "tests.cli.dying_app:queue", "--processes", "2")
    with KQueue(host=beanstalkd.host, port=beanstalkd.port) as queue:
        assert wait_for(lambda: _watching(queue, "die") == 2, timeout=20)
        queue.add_job("die", "bang")
        assert wait_for(lambda: _watching(queue, "die") == 1, timeout=20), "no child died"
        # Started again after a second: two workers again, and they run what comes.
        assert wait_for(lambda: _watching(queue, "die") == 2, timeout=20), "not restarted"
        queue.add_jobs("record", list(range(10)))
        assert wait_for(lambda: len(_lines(out_file)) == 10, timeout=20)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(20) in (0, 9)  # the dead child's code may be the worst seen


def test_the_parent_serves_the_metrics_of_every_child_on_one_port(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, out_file: Path
) -> None:
    port = free_port()
    supervisor = spawn_kqueue(
        "worker", "tests.cli.app:queue", "--processes", "2", "--metrics-port", str(port)
    )
    with KQueue(host=beanstalkd.host, port=beanstalkd.port) as queue:
        assert wait_for(lambda: _watching(queue, "record") == 2, timeout=20), "a child died"
        queue.add_jobs("record", list(range(30)))
        queue.add_job("slow", {"seconds": 0}, delay=300)
        assert wait_for(lambda: len(_lines(out_file)) == 30, timeout=20)
        url = f"http://127.0.0.1:{port}/metrics"
        body = ""

        def completed_all() -> bool:
            nonlocal body
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            return 'kqueue_jobs_total{event="completed"} 30.0' in body

        assert wait_for(completed_all, timeout=10), body
        assert 'kqueue_queue_depth{job_type="slow",state="delayed"} 1.0' in body
        assert _watching(queue, "record") == 2  # no child lost its port race
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(20) == 0


def test_children_get_the_store_url_by_environment_not_on_their_command_line(
    spawn_kqueue: Spawn, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    secret_url = f"sqlite:///{tmp_path / 'secret-name.sqlite3'}"
    supervisor = spawn_kqueue(
        "worker", "tests.cli.app:queue", "--processes", "2", "--store", secret_url
    )
    with KQueue(host=beanstalkd.host, port=beanstalkd.port) as queue:
        assert wait_for(lambda: _watching(queue, "record") == 2, timeout=20)
    children = subprocess.run(
        ["ps", "-o", "args=", "--ppid", str(supervisor.pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if not children.strip():
        pytest.fail("ps found no children of the supervisor")
    assert "secret-name" not in children
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(20) == 0
