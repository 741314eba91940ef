"""Real service helpers for the test suite: spawn beanstalkd, reach Redis / SQL servers.

A real-service test skips with a clear reason on a machine without the service, and fails when
``CI=true`` (a skip there would hide a broken install step).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing_service(reason: str) -> None:
    """Skip the test locally, fail it in CI."""
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 5.0) -> None:
    """Block until a TCP connect to host:port succeeds, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port}") from None
            time.sleep(0.005)


class BeanstalkdProcess:
    """A real beanstalkd on a free port that tests can kill -9 and restart."""

    def __init__(
        self,
        binary: str,
        *,
        binlog_dir: Path | None = None,
        max_job_size: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = free_port()
        self.binlog_dir = binlog_dir
        self.max_job_size = max_job_size
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def _command(self) -> list[str]:
        cmd = [self.binary, "-l", self.host, "-p", str(self.port)]
        if self.binlog_dir is not None:
            cmd += ["-b", str(self.binlog_dir)]
        if self.max_job_size is not None:
            cmd += ["-z", str(self.max_job_size)]
        return cmd + list(self.extra_args)

    def start(self) -> None:
        self.process = subprocess.Popen(self._command(), stderr=subprocess.DEVNULL)
        wait_for_port(self.host, self.port)

    def kill(self) -> None:
        """kill -9: every in-memory job is gone unless a binlog was given."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def restart(self, *, binlog_dir: Path | bool | None = True) -> None:
        """Kill -9 and start again on the same port; ``binlog_dir=False`` drops the binlog."""
        self.kill()
        if binlog_dir is False:
            self.binlog_dir = None
        elif isinstance(binlog_dir, Path):
            self.binlog_dir = binlog_dir
        self.start()

    def signal(self, signum: int) -> None:
        assert self.process is not None, "beanstalkd is not running"
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


def beanstalkd_binary() -> str | None:
    return os.environ.get("BEANSTALKD_BIN") or shutil.which("beanstalkd")


def server_id(stats: Mapping[str, object]) -> str:
    """A beanstalkd's ``id`` from greenstalk's ``stats()``: 16 hex digits, which greenstalk
    turns into an int when they happen to be all decimal (about 1 server in 2,000), dropping
    any leading zero; restored here."""
    value = stats["id"]
    return str(value).zfill(16) if isinstance(value, int) else str(value)


def tcp_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_beanstalkd() -> Iterator[BeanstalkdProcess]:
    """A real beanstalkd on a free port for a script (the benchmarks); exits if not installed."""
    binary = beanstalkd_binary()
    if binary is None:
        raise SystemExit("beanstalkd not installed (apt-get install beanstalkd)")
    server = BeanstalkdProcess(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class FakeBroker:
    """An in-process fakebeanstalk behind :class:`BeanstalkdProcess`'s interface, so the core
    suites run on both brokers from one parametrised fixture (``kill`` is ``crash()``; a
    restart comes back empty, as beanstalkd without a binlog does)."""

    def __init__(self) -> None:
        from fakebeanstalk.server import FakeBeanstalkServer

        self.server = FakeBeanstalkServer(port=0)
        self.binlog_dir: Path | None = None

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def start(self) -> None:
        if self.server.port == 0:
            self.server.start()
        elif not self.server.running:
            self.server.restart(keep_jobs=False)

    def kill(self) -> None:
        """Like kill -9: connections dropped, nothing listens, every job gone."""
        self.server.crash()

    def restart(self, *, binlog_dir: Path | bool | None = True) -> None:
        """Crash and start again, empty, on the same port."""
        if binlog_dir not in (False, None):
            raise NotImplementedError("the fake broker fixture restarts without a binlog")
        self.server.restart(keep_jobs=False)

    def signal(self, signum: int) -> None:
        """SIGUSR1 puts the fake into drain mode, as it does beanstalkd."""
        if signum != signal.SIGUSR1:
            raise NotImplementedError(f"the fake broker fixture takes SIGUSR1 only, not {signum}")
        self.server.drain()

    def stop(self) -> None:
        self.server.stop()


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False): tests
    wait for what they need, bounded, instead of sleeping and hoping."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
