"""``kqueue dashboard`` as an operator runs it: a real process serving real HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from kqueue import KQueue
from tests.servers import BeanstalkdProcess

ROOT = Path(__file__).resolve().parents[2]


def test_kqueue_dashboard_serves_the_queue_until_interrupted(
    beanstalkd: BeanstalkdProcess, sqlite_url: str
) -> None:
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=sqlite_url) as queue:
        queue.add_job("email.send", {"to": "ada@example.com"})
    command = [sys.executable, "-m", "kqueue", "dashboard", "--port", "0"]
    command += ["--beanstalkd", f"{beanstalkd.host}:{beanstalkd.port}", "--store", sqlite_url]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the socket listens
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, line + (proc.stderr.read() if proc.stderr else "")
        with urllib.request.urlopen(found.group(0) + "type?name=email.send", timeout=10) as page:
            html = page.read().decode()
        assert 'data-count="ready">1<' in html
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kqueue_dashboard_stops_cleanly_on_a_signal_sent_as_the_banner_shows(
    beanstalkd: BeanstalkdProcess, sqlite_url: str
) -> None:
    # The banner used to print before the stop handlers went in: a Ctrl-C right then raised
    # KeyboardInterrupt (exit 130), a race the docs-example run hit under load.
    command = [sys.executable, "-m", "kqueue", "dashboard", "--port", "0"]
    command += ["--beanstalkd", f"{beanstalkd.host}:{beanstalkd.port}", "--store", sqlite_url]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            assert proc.stdout is not None
            assert "kqueue dashboard on" in proc.stdout.readline()
            proc.send_signal(signum)
            assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
