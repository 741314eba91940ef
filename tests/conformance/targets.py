"""The two servers under comparison: the real beanstalkd binary and fakebeanstalk.

Both are wrapped in a :class:`ServerTarget` so that a test is written once and runs against
either. Readiness is detected without connecting (through ``/proc/net``), so that the real
server's ``total-connections`` counts only the test's own connections, as the fake's does.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.conformance.rawclient import DEFAULT_TIMEOUT, RawConnection, stats_dict
from tests.servers import BeanstalkdProcess, beanstalkd_binary, missing_service, wait_for_port

REAL = "real"
FAKE = "fake"
SERVER_KINDS = (REAL, FAKE)


class ServerTarget(Protocol):
    """What a conformance test needs from a server, whichever it is."""

    kind: str
    binlog_dir: Path | None

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    def connect(self, *, timeout: float = DEFAULT_TIMEOUT) -> RawConnection:
        """A new raw connection (over the unix socket when the server listens on one)."""
        ...

    def drain(self) -> None:
        """Enter drain mode and return once the server reports ``draining: true``."""
        ...

    def restart_keeping_jobs(self) -> None:
        """Stop hard and start again from the journal (binlog / keep_jobs)."""
        ...

    def restart_empty(self) -> None:
        """Stop hard and start again with no jobs (no binlog / keep_jobs=False)."""
        ...

    def stop(self) -> None:
        """Stop the server and release its resources."""
        ...


def _listening_tcp(port: int) -> bool:
    """Whether some socket listens on TCP ``port`` (from /proc/net, without connecting)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _listening_unix(path: str) -> bool:
    """Whether a unix stream socket listens at ``path`` (flag __SO_ACCEPTCON in /proc)."""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
            return True
    return False


def _wait(predicate_ok: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate_ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout} s")
        time.sleep(0.002)


def _wait_draining(target: ServerTarget) -> None:
    deadline = time.monotonic() + 5.0
    with target.connect() as probe:
        while stats_dict(probe.cmd(b"stats\r\n")).get("draining") != "true":
            if time.monotonic() > deadline:
                raise TimeoutError("server did not enter drain mode")
            time.sleep(0.005)


class _QuietBeanstalkd(BeanstalkdProcess):
    """A BeanstalkdProcess that can listen on a unix socket and never probes by connecting."""

    def __init__(self, binary: str, *, unix_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(binary, **kwargs)
        self.unix_path = unix_path

    def _command(self) -> list[str]:
        cmd = super()._command()
        if self.unix_path is not None:
            cmd[cmd.index("-l") + 1] = f"unix:{self.unix_path}"
        return cmd

    def start(self) -> None:
        self.process = subprocess.Popen(self._command(), stderr=subprocess.DEVNULL)
        try:
            if self.unix_path is not None:
                _wait(lambda: _listening_unix(str(self.unix_path)), "beanstalkd unix socket")
            elif Path("/proc/net/tcp").exists():
                _wait(lambda: _listening_tcp(self.port), f"beanstalkd on port {self.port}")
            else:  # pragma: no cover - not Linux: fall back to a connecting probe
                wait_for_port(self.host, self.port)
        except TimeoutError:
            self.kill()
            raise


class RealTarget:
    """The real beanstalkd binary, spawned on a free port (or a unix socket)."""

    kind = REAL

    def __init__(
        self,
        *,
        max_job_size: int | None,
        unix_path: str | None,
        binlog_dir: Path | None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        binary = beanstalkd_binary()
        if binary is None:
            missing_service("beanstalkd binary not found (apt-get install beanstalkd)")
            raise AssertionError("unreachable")
        self.process = _QuietBeanstalkd(
            binary,
            unix_path=unix_path,
            max_job_size=max_job_size,
            binlog_dir=binlog_dir,
            extra_args=extra_args,
        )
        self.unix_path = unix_path
        self.binlog_dir = binlog_dir
        self.process.start()

    @property
    def host(self) -> str:
        return self.process.host

    @property
    def port(self) -> int:
        return self.process.port

    def connect(self, *, timeout: float = DEFAULT_TIMEOUT) -> RawConnection:
        if self.unix_path is not None:
            return RawConnection.unix(self.unix_path, timeout=timeout)
        return RawConnection.tcp(self.host, self.port, timeout=timeout)

    def drain(self) -> None:
        self.process.signal(signal.SIGUSR1)
        _wait_draining(self)

    def restart_keeping_jobs(self) -> None:
        assert self.process.binlog_dir is not None, "spawned without a binlog"
        self.process.restart()

    def restart_empty(self) -> None:
        self.process.restart(binlog_dir=False)
        self.binlog_dir = None

    def stop(self) -> None:
        self.process.stop()


def _fake_server_class() -> Any:
    """FakeBeanstalkServer, or a clear test failure when fakebeanstalk cannot provide it."""
    errors = []
    for module_name in ("fakebeanstalk", "fakebeanstalk.server"):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any import-time failure of the fake is a failure here
            errors.append(f"import {module_name}: {exc!r}")
            continue
        cls = getattr(module, "FakeBeanstalkServer", None)
        if cls is not None:
            return cls
        errors.append(f"{module_name} has no FakeBeanstalkServer")
    pytest.fail("fakebeanstalk is not usable: " + "; ".join(errors), pytrace=False)


class FakeTarget:
    """fakebeanstalk's FakeBeanstalkServer, in this process, on real time."""

    kind = FAKE

    def __init__(
        self,
        *,
        max_job_size: int | None,
        unix_path: str | None,
        binlog_dir: Path | None = None,
        binlog_size: int | None = None,
    ) -> None:
        cls = _fake_server_class()
        kwargs: dict[str, Any] = {"host": "127.0.0.1", "port": 0}
        if max_job_size is not None:
            kwargs["max_job_size"] = max_job_size
        if unix_path is not None:
            kwargs["unix_path"] = unix_path
        if binlog_dir is not None:
            kwargs["binlog_dir"] = binlog_dir
        if binlog_size is not None:
            kwargs["binlog_size"] = binlog_size
        self.server = cls(**kwargs)
        self.unix_path = unix_path
        self.binlog_dir = binlog_dir
        self.server.start()

    @property
    def host(self) -> str:
        host: str = self.server.host
        return host

    @property
    def port(self) -> int:
        port: int = self.server.port
        return port

    def connect(self, *, timeout: float = DEFAULT_TIMEOUT) -> RawConnection:
        if self.unix_path is not None:
            return RawConnection.unix(self.unix_path, timeout=timeout)
        return RawConnection.tcp(self.host, self.port, timeout=timeout)

    def drain(self) -> None:
        self.server.drain()
        _wait_draining(self)

    def restart_keeping_jobs(self) -> None:
        self.server.restart(keep_jobs=True)

    def restart_empty(self) -> None:
        self.server.restart(keep_jobs=False)

    def stop(self) -> None:
        self.server.stop()


class ServerFactory:
    """Spawns servers of one kind for a test, and stops them all when the test ends."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self._started: list[ServerTarget] = []
        self._socket_dirs: list[tempfile.TemporaryDirectory[str]] = []

    def spawn(
        self,
        *,
        max_job_size: int | None = None,
        unix: bool = False,
        binlog: bool = False,
        binlog_size: int | None = None,
    ) -> ServerTarget:
        """A fresh server; ``binlog`` asks for one whose jobs survive a hard restart, in
        a binlog directory of its own (``-b``), with files of ``binlog_size`` (``-s``)."""
        unix_path = self._unix_path() if unix else None
        binlog_dir = None
        if binlog:
            binlog_dir = self.tmp_path / f"binlog{len(self._started)}"
            binlog_dir.mkdir()
        target: ServerTarget
        if self.kind == REAL:
            extra = () if binlog_size is None else ("-s", str(binlog_size))
            target = RealTarget(
                max_job_size=max_job_size,
                unix_path=unix_path,
                binlog_dir=binlog_dir,
                extra_args=extra,
            )
        else:
            target = FakeTarget(
                max_job_size=max_job_size,
                unix_path=unix_path,
                binlog_dir=binlog_dir,
                binlog_size=binlog_size,
            )
        self._started.append(target)
        return target

    def _unix_path(self) -> str:
        # tmp_path can exceed the 107-byte limit of sun_path: use a short directory.
        directory = tempfile.TemporaryDirectory(prefix="kqconf")
        self._socket_dirs.append(directory)
        return os.path.join(directory.name, "socket")

    def close(self) -> None:
        """Stop every server this factory started."""
        for target in reversed(self._started):
            with contextlib.suppress(Exception):
                target.stop()
        for directory in self._socket_dirs:
            directory.cleanup()
