"""Drive the test containers through our own Docker engine: find, kill, start, freeze, thaw.

The engine is the private one ``ci/docker.sh`` starts; its socket comes from
``KQUEUE_DOCKER_HOST`` and never falls back to the machine's default Docker socket, so the tests
cannot touch another daemon by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.servers import BeanstalkdProcess, wait_for_port

DEFAULT_ENGINE_HOST = "unix:///run/kqueue-docker/docker.sock"  # where ci/docker.sh puts it
BUILD_SCRIPT = Path(__file__).with_name("build-images.sh")
IMAGES = ("beanstalkd", "redis", "postgres")


def engine_host() -> str:
    """Our engine's address: ``KQUEUE_DOCKER_HOST``, else ci/docker.sh's socket (never Docker's)."""
    return os.environ.get("KQUEUE_DOCKER_HOST") or DEFAULT_ENGINE_HOST


def docker_binary() -> str | None:
    """The Docker client: ``KQUEUE_DOCKER_BIN``, else Debian's (it matches the engine)."""
    explicit = os.environ.get("KQUEUE_DOCKER_BIN")
    if explicit:
        return explicit
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")


def docker(*args: str, timeout: float = 60.0) -> str:
    """Run one docker command against our engine; its stdout, or RuntimeError with stderr."""
    binary = docker_binary()
    if binary is None:
        raise RuntimeError("no docker client installed (apt-get install docker.io)")
    env = os.environ | {"DOCKER_HOST": engine_host()}
    done = subprocess.run(
        [binary, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def images_tag() -> str:
    """The tag of the images the current inputs give (``KQUEUE_DOCKER_TAG`` or the script's)."""
    tag = os.environ.get("KQUEUE_DOCKER_TAG")
    if tag:
        return tag
    done = subprocess.run(
        [str(BUILD_SCRIPT), "--tag"], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def engine_problem() -> str | None:
    """Why the container tests cannot run here, or None when the engine and images are ready."""
    if docker_binary() is None:
        return "no docker client installed"
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=10)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"no Docker engine answers on {engine_host()} ({exc})"
    tag = images_tag()
    for name in IMAGES:
        try:
            docker("image", "inspect", "--format", "{{.Id}}", f"kqueue-test/{name}:{tag}")
        except RuntimeError:
            return f"image kqueue-test/{name}:{tag} not built"
    return None


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Container:
    """One container of the compose project, addressed by its id."""

    def __init__(self, project: str, service: str) -> None:
        self.service = service
        self.id = docker(
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        )
        if not self.id or "\n" in self.id:
            raise RuntimeError(f"expected one {service} container in {project}, got {self.id!r}")

    def state(self) -> str:
        """Docker's word for it: running, paused, exited..."""
        return docker("inspect", "--format", "{{.State.Status}}", self.id)

    def kill(self) -> None:
        """SIGKILL the server, as ``kill -9`` would; returns once the container has exited."""
        if self.state() in {"running", "paused"}:
            docker("kill", "--signal", "KILL", self.id)
        wait_until(lambda: self.state() == "exited", 20, f"{self.service} to exit")

    def start(self) -> None:
        """Start the stopped container again: the same command line, so the same port."""
        docker("start", self.id)

    def pause(self) -> None:
        """Freeze every process of the container (cgroup freezer): it neither answers nor closes."""
        docker("pause", self.id)

    def unpause(self) -> None:
        """Thaw a frozen container; what its clients sent meanwhile is then read and served."""
        if self.state() == "paused":
            docker("unpause", self.id)

    def logs(self) -> str:
        """The container's last output lines, for failure messages."""
        try:
            return docker("logs", "--tail", "20", self.id)
        except RuntimeError as exc:
            return str(exc)


class ContainerBeanstalkd(BeanstalkdProcess):
    """A beanstalkd container with the interface of a spawned one (kill, start, restart...).

    A subclass, so that every helper written for a spawned beanstalkd (the chaos ``Cluster``)
    drives a container unchanged. The container runs without a binlog: a restart is empty.
    """

    def __init__(self, container: Container, host: str, port: int) -> None:
        super().__init__("beanstalkd (container)")
        self.container = container
        self.host = host
        self.port = port

    def start(self) -> None:
        self.container.start()
        wait_for_port(self.host, self.port, timeout=20)

    def kill(self) -> None:
        self.container.kill()

    def restart(self, *, binlog_dir: Path | bool | None = True) -> None:
        if isinstance(binlog_dir, Path):
            raise NotImplementedError("the beanstalkd container has no binlog directory")
        self.kill()
        self.start()

    def signal(self, signum: int) -> None:
        docker("kill", "--signal", str(signum), self.container.id)

    def stop(self) -> None:
        """Leave it running (unfrozen) for the next test: the compose project owns its life."""
        self.container.unpause()

    def pause(self) -> None:
        """Black-hole the broker: connections are accepted by the kernel, nothing answers."""
        self.container.pause()

    def unpause(self) -> None:
        self.container.unpause()
