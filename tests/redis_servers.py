"""Real Redis topologies for the tests: a Sentinel set (a master, a replica, three Sentinels)
and a Redis Cluster (three masters made with ``redis-cli --cluster create``), each on free
loopback ports with its files in a temporary directory, torn down after.

A test that needs one skips with a clear reason where redis-server is missing, and fails in CI
(:func:`tests.servers.missing_service`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.servers import free_port, missing_service, tcp_reachable, wait_for, wait_for_port

SERVICE = "mymaster"
"""The name the Sentinels monitor the master under."""

HOST = "127.0.0.1"


def redis_binaries() -> tuple[str, str] | None:
    """The paths of redis-server and redis-cli, or None when either is missing."""
    server = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    cli = os.environ.get("REDIS_CLI_BIN") or shutil.which("redis-cli")
    return (server, cli) if server and cli else None


def require_redis_binaries() -> tuple[str, str]:
    """redis-server and redis-cli, or skip (fail in CI) naming what to install."""
    found = redis_binaries()
    if found is None:
        missing_service("redis-server / redis-cli not found (apt-get install redis-server)")
        raise AssertionError("unreachable")
    return found


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 above) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 < 65536 and not tcp_reachable(HOST, port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _client(port: int) -> Any:
    import redis

    return redis.Redis(HOST, port, socket_connect_timeout=1, socket_timeout=2)


class RedisProcess:
    """One redis-server (or Sentinel) on a free port, from a config file it writes."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        lines: list[str],
        *,
        sentinel: bool = False,
        port: int | None = None,
    ) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.dir = workdir / str(self.port)
        self.dir.mkdir()
        self.config = self.dir / ("sentinel.conf" if sentinel else "redis.conf")
        base = [f"port {self.port}", f"bind {HOST}", f"dir {self.dir}", "daemonize no"]
        if not sentinel:
            # No persistence; a replica's full sync starts at once (the default waits 5 s).
            base += ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]
        self.config.write_text("\n".join(base + lines) + "\n")
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        command = [self.binary, str(self.config)] + (["--sentinel"] if self.sentinel else [])
        command += extra
        log = (self.dir / "log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(HOST, self.port, timeout=10)

    def client(self) -> Any:
        """A redis-py client on this process (the caller closes it)."""
        return _client(self.port)

    def kill(self) -> None:
        """kill -9: whatever it had not replicated is gone."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


class SentinelSet:
    """A master, one replica and three Sentinels watching them (quorum 2, a master is down
    after one second without answers)."""

    def __init__(self, server: str, workdir: Path) -> None:
        self.master = RedisProcess(server, workdir, [])
        self.replica = RedisProcess(server, workdir, [f"replicaof {HOST} {self.master.port}"])
        watch = [
            f"sentinel monitor {SERVICE} {HOST} {self.master.port} 2",
            f"sentinel down-after-milliseconds {SERVICE} 1000",
            f"sentinel failover-timeout {SERVICE} 4000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        self.sentinels = [RedisProcess(server, workdir, watch, sentinel=True) for _ in range(3)]

    @property
    def servers(self) -> list[RedisProcess]:
        return [self.master, self.replica]

    def url(self, *, query: str = "") -> str:
        """The ``redis+sentinel://`` URL of this set, database 0."""
        nodes = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{nodes}/{SERVICE}/0" + (f"?{query}" if query else "")

    def start(self) -> None:
        for process in (*self.servers, *self.sentinels):
            process.start()
        if not wait_for(self.ready, timeout=30, interval=0.1):
            raise TimeoutError("the Sentinel set did not settle within 30 s")

    def master_port(self, sentinel: RedisProcess | None = None) -> int:
        """The master's port as a Sentinel names it now."""
        client = (sentinel or self.sentinels[0]).client()
        try:
            _host, port = client.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)
        finally:
            client.close()

    def _replicas_up(self, master: RedisProcess) -> bool:
        client = master.client()
        try:
            info = client.info("replication")
            return bool(info.get("connected_slaves", 0)) and "online" in str(info.get("slave0"))
        except Exception:
            return False
        finally:
            client.close()

    def ready(self) -> bool:
        """Every Sentinel sees the master, the other two and the replica; the replica is
        in sync."""
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                state = client.sentinel_master(SERVICE)
            except Exception:
                return False
            finally:
                client.close()
            if int(state.get("num-other-sentinels", 0)) < 2 or int(state.get("num-slaves", 0)) < 1:
                return False
            if state.get("is_master_down") or "s_down" in str(state.get("flags", "")):
                return False
        current = self.by_port(self.master_port())
        return current is not None and self._replicas_up(current)

    def replica_port(self) -> int:
        """The port of the running server that is not the master now."""
        master = self.master_port()
        return next(s.port for s in self.servers if s.port != master and s.process)

    def by_port(self, port: int) -> RedisProcess | None:
        return next((s for s in self.servers if s.port == port and s.process), None)

    def fail_over(self, timeout: float = 30.0) -> RedisProcess:
        """kill -9 the master, wait until the Sentinels promote the replica; the new master."""
        old = self.by_port(self.master_port())
        assert old is not None, "no running master"
        old.kill()
        promoted = wait_for(lambda: self.master_port() != old.port, timeout=timeout, interval=0.1)
        if not promoted:
            raise TimeoutError(f"no failover within {timeout} s")
        new = self.by_port(self.master_port())
        assert new is not None
        return new

    def rejoin(self, old: RedisProcess, timeout: float = 30.0) -> None:
        """Start a killed server again (empty) as the new master's replica, as an operator
        would (the Sentinels would convert it too, but only at their next INFO, up to 10 s
        later), and wait until it is in sync."""
        old.start("--replicaof", HOST, str(self.master_port()))
        if not wait_for(self.ready, timeout=timeout, interval=0.1):
            raise TimeoutError(f"the old master did not rejoin as a replica within {timeout} s")

    def stop(self) -> None:
        for process in (*self.sentinels, *self.servers):
            process.stop()


class Cluster:
    """Three Redis Cluster masters (no replicas), slots spread by redis-cli."""

    def __init__(self, server: str, cli: str, workdir: Path) -> None:
        self.cli = cli
        node_lines = ["cluster-enabled yes", "cluster-config-file nodes.conf"]
        node_lines.append("cluster-node-timeout 2000")
        self.nodes = [
            RedisProcess(server, workdir, node_lines, port=cluster_port()) for _ in range(3)
        ]

    def url(self, *, query: str = "") -> str:
        """The ``redis+cluster://`` URL naming every node."""
        nodes = ",".join(f"{HOST}:{node.port}" for node in self.nodes)
        return f"redis+cluster://{nodes}/" + (f"?{query}" if query else "")

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"{HOST}:{node.port}" for node in self.nodes]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        if not wait_for(self.ready, timeout=30, interval=0.1):
            raise TimeoutError("the cluster did not reach cluster_state:ok within 30 s")

    def ready(self) -> bool:
        for node in self.nodes:
            client = node.client()
            try:
                if client.execute_command("CLUSTER", "INFO").find(b"cluster_state:ok") == -1:
                    return False
            except Exception:
                return False
            finally:
                client.close()
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def running_sentinel_set() -> Iterator[SentinelSet]:
    """A started :class:`SentinelSet`, stopped and its files removed afterwards."""
    server, _cli = require_redis_binaries()
    with tempfile.TemporaryDirectory(prefix="kq-sentinel-") as workdir:
        topology = SentinelSet(server, Path(workdir))
        try:
            topology.start()
            yield topology
        finally:
            topology.stop()


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A started :class:`Cluster`, stopped and its files removed afterwards."""
    server, cli = require_redis_binaries()
    with tempfile.TemporaryDirectory(prefix="kq-cluster-") as workdir:
        topology = Cluster(server, cli, Path(workdir))
        try:
            topology.start()
            yield topology
        finally:
            topology.stop()
