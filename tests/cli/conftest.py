"""Helpers for the command-line tests: run ``kqueue`` in process or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kqueue.cli import main
from tests.servers import BeanstalkdProcess

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    """Exit code and output of one in-process run."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(beanstalkd: BeanstalkdProcess, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``kqueue ARGS --beanstalkd <test server>`` in this process."""

    def run(*args: str, store: str | None = None) -> Result:
        argv = [*args, "--beanstalkd", f"{beanstalkd.host}:{beanstalkd.port}"]
        if store:
            argv += ["--store", store]
        code = main(argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def out_file(tmp_path: Path) -> Path:
    """Where tests/cli/app.py handlers write what they ran."""
    return tmp_path / "ran.jsonl"


@pytest.fixture
def spawn_kqueue(
    beanstalkd: BeanstalkdProcess, out_file: Path
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -m kqueue ARGS`` as a real process (killed after the test)."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(*args: str) -> subprocess.Popen[str]:
        env = dict(os.environ, KQ_TEST_OUT=str(out_file), PYTHONPATH=str(ROOT))
        env["KQUEUE_BEANSTALKD"] = f"{beanstalkd.host}:{beanstalkd.port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "kqueue", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
