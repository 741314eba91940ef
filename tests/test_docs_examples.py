"""Every ``kqueue`` command in a shell block of the README and docs/ runs as written.

The commands are taken from fenced ``sh`` / ``bash`` / ``shell`` / ``console`` blocks (one
command a line; ``;`` and ``&&`` separate several; segments that are not ``kqueue`` commands,
like ``pip install .``, are left out) and run as real processes against a real beanstalkd and
Redis. They name the guide's application, ``myapp.jobs:queue``: the test writes a stand-in for
it (handlers for the job types the docs use, its own key prefix) and the ``payloads.jsonl`` the
docs put, and gives each command a queue with a ready, a spam and a buried ``email.send`` job.
A ``KEY`` argument stands for the record key of the buried job.
Commands that run until stopped (worker, sweeper, scheduler, ``stats --watch``, dashboard) get
SIGINT once they are up; ``purge`` without ``--yes`` gets its question answered on a
pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kqueue import KQueue, RetryPolicy
from kqueue.stores.redis import RedisStore
from tests.servers import BeanstalkdProcess

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCE = re.compile(r"```(sh|bash|shell|console)\s*$")

APP_SOURCE = '''\
"""A stand-in for the guide's myapp/jobs.py, on the test's servers."""
import os

from kqueue import KQueue, RetryPolicy
from kqueue.stores.redis import RedisStore

host, port = os.environ["MYAPP_BEANSTALKD"].split(":")
queue = KQueue(
    host=host,
    port=int(port),
    bulk_store=RedisStore(os.environ["MYAPP_REDIS_URL"], prefix=os.environ["MYAPP_PREFIX"]),
    retry=RetryPolicy(max_attempts=1),
)


def send_email(job):
    if job.data["to"].startswith("bounce"):
        raise ConnectionError("mailbox unavailable")


queue.add_handler("email.send", send_email)
queue.add_handler("video.encode", lambda job: None)
queue.add_handler("report.daily", lambda job: None)
queue.add_periodic("report.daily", "0 6 * * *", tz="Europe/Riga", payload={"kind": "daily"})
'''


@dataclass(frozen=True)
class Example:
    """One documented command: where it is written, and its arguments after ``kqueue``."""

    where: str
    args: tuple[str, ...]


def _shell_lines(path: Path) -> Iterator[tuple[int, str]]:
    inside = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            inside = not inside and SHELL_FENCE.match(line) is not None
            continue
        if inside:
            yield number, line


def _commands(line: str) -> Iterator[list[str]]:
    """The ``kqueue`` commands of one shell line (comments dropped, ``;``/``&&`` split)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    segment: list[str] = []
    for token in [*lexer, ";"]:
        if token and set(token) <= set(";&|"):
            if segment[:1] == ["kqueue"]:
                yield segment[1:]
            segment = []
        else:
            segment.append(token)


def documented_examples() -> list[Example]:
    """Every distinct kqueue command of the docs, first place written."""
    seen: dict[tuple[str, ...], Example] = {}
    for path in DOCS:
        for number, line in _shell_lines(path):
            for args in _commands(line):
                where = f"{path.relative_to(ROOT)}:{number}"
                seen.setdefault(tuple(args), Example(where, tuple(args)))
    return list(seen.values())


EXAMPLES = documented_examples()


def test_the_docs_have_command_examples_to_run() -> None:
    commands = {example.args[0] for example in EXAMPLES if example.args}
    assert {"worker", "stats", "put", "peek", "buried", "kick", "purge", "sweep"} <= commands


@pytest.fixture
def app_dir(
    tmp_path: Path, beanstalkd: BeanstalkdProcess, redis_url: str, redis_prefix: str
) -> Iterator[Path]:
    """The stand-in application and payload file, and a queue with jobs to look at."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "jobs.py").write_text(APP_SOURCE)
    (tmp_path / "payloads.jsonl").write_text('{"to": "a@example.com"}\n{"to": "b@example.com"}\n')
    store = RedisStore(redis_url, prefix=redis_prefix)
    queue = KQueue(
        host=beanstalkd.host,
        port=beanstalkd.port,
        bulk_store=store,
        retry=RetryPolicy(max_attempts=1),
    )
    queue.add_handler("email.send", lambda job: 1 / 0)
    queue.add_job("email.send", {"to": "bounce@example.com"})
    queue.run_jobs(time_limit_ms=0)  # buried: a dead letter to list and kick
    (dead,) = store.scan()
    (tmp_path / "KEY").write_text(dead.key)  # what a documented ``KEY`` stands for
    queue.add_jobs("email.send", [{"to": "ada@example.com"}, {"to": "spam@example.com"}])
    queue.close()
    store.close()
    yield tmp_path


def _environment(
    app_dir: Path, beanstalkd: BeanstalkdProcess, redis_url: str, prefix: str
) -> dict[str, str]:
    address = f"{beanstalkd.host}:{beanstalkd.port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(app_dir), str(ROOT)]))
    env.update(MYAPP_BEANSTALKD=address, MYAPP_REDIS_URL=redis_url, MYAPP_PREFIX=prefix)
    # As a deployment sets them, for the commands written without the application.
    env.update(KQUEUE_BEANSTALKD=address, KQUEUE_STORE=redis_url, KQUEUE_STORE_PREFIX=prefix)
    env.pop("KQUEUE_APP", None)
    return env


class Running:
    """A started command whose output is read on threads, to wait for a line."""

    def __init__(self, args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> None:
        self.stdin_master, stdin_slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kqueue", *args],
            cwd=cwd,
            env=env,
            stdin=stdin_slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(stdin_slave)
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    def answer(self, text: str) -> None:
        os.write(self.stdin_master, text.encode())

    def wait_for(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                return  # ended by itself: its exit code tells
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"not up after {timeout} s; stderr: {''.join(self.err)}")
            time.sleep(0.05)

    def finish(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"did not end within {timeout} s; stderr: {''.join(self.err)}")
        for reader in self.readers:
            reader.join(5)
        os.close(self.stdin_master)
        return code


def _runs_until_stopped(args: tuple[str, ...]) -> Callable[[Running], bool] | None:
    """For a command that runs until stopped: when it is up. None for the others."""
    if args[0] == "worker" and "--burst" not in args:
        wanted = int(args[args.index("--processes") + 1]) if "--processes" in args else 1
        return lambda run: "".join(run.err).count("worker started") >= wanted
    if args[0] == "sweeper":
        return lambda run: "recovery pass" in "".join(run.err)
    if args[0] == "scheduler":
        return lambda run: "scheduler:" in "".join(run.out)
    if "--watch" in args:
        return lambda run: "job_type" in "".join(run.out)
    if args[0] == "dashboard":
        return lambda run: "kqueue dashboard on" in "".join(run.out)
    return None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("example", EXAMPLES, ids=[" ".join(e.args) or e.where for e in EXAMPLES])
def test_documented_command_runs_as_written(
    example: Example,
    app_dir: Path,
    beanstalkd: BeanstalkdProcess,
    redis_url: str,
    redis_prefix: str,
) -> None:
    env = _environment(app_dir, beanstalkd, redis_url, redis_prefix)
    key = (app_dir / "KEY").read_text()
    example = Example(example.where, tuple(key if a == "KEY" else a for a in example.args))
    run = Running(example.args, app_dir, env)
    up = _runs_until_stopped(example.args)
    if up is not None:
        run.wait_for(lambda: up(run), timeout=60)
        run.process.send_signal(signal.SIGINT)
    elif example.args[0] == "purge" and "--yes" not in example.args:
        run.answer("y\n")
    code = run.finish(timeout=240)
    allowed = {0, 130} if "--watch" in example.args else {0}
    assert code in allowed, (
        f"{example.where}: kqueue {shlex.join(example.args)} exited {code}\n"
        f"stdout: {''.join(run.out)}\nstderr: {''.join(run.err)}"
    )
    assert "Traceback" not in "".join(run.err), "".join(run.err)


EXAMPLE = ROOT / "docs" / "examples" / "unique_and_periodic.py"


def _guide_python_blocks(first_heading: str, next_heading: str) -> list[list[str]]:
    """The python blocks of docs/guide.md between two headings, as lists of lines."""
    text = (ROOT / "docs" / "guide.md").read_text()
    part = text[text.index(first_heading) : text.index(next_heading)]
    return [block.splitlines() for block in re.findall(r"```python\n(.*?)```", part, re.S)]


def test_the_guides_unique_and_periodic_examples_are_quoted_from_a_module_that_runs() -> None:
    example_lines = {line.strip() for line in EXAMPLE.read_text().splitlines()}
    blocks = _guide_python_blocks("### Unique jobs", "## 3. Run workers")
    assert len(blocks) == 3
    for block in blocks:
        assert [line for line in block if line.strip() not in example_lines] == []
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert "periodic jobs ran: [{'kind': 'daily'}, None]" in done.stdout
