"""Throughput of fakebeanstalk vs the real beanstalkd, through greenstalk (not a test).

Run: .venv/bin/python bench/bench_fakebeanstalk.py [--jobs N]

Measures put ops/s and reserve+delete ops/s against an in-process FakeBeanstalkServer and
against a real beanstalkd spawned on a free port, in the same run, and prints the ratio.
The target is a fake at least half as fast as the real server.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import greenstalk

from fakebeanstalk import FakeBeanstalkServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def real_beanstalkd() -> Iterator[tuple[str, int]]:
    """A real beanstalkd on a free port, stopped afterwards."""
    binary = shutil.which("beanstalkd")
    if binary is None:
        sys.exit("beanstalkd binary not found")
    port = _free_port()
    process = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port)])
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        yield ("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait()


@contextmanager
def fake_beanstalkd() -> Iterator[tuple[str, int]]:
    """An in-process fakebeanstalk server."""
    with FakeBeanstalkServer() as server:
        yield server.address


def _rate(count: int, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - started)


def measure(address: tuple[str, int], jobs: int) -> tuple[float, float]:
    """(put ops/s, reserve+delete ops/s) through one greenstalk client."""
    with greenstalk.Client(address, use="bench", watch="bench") as client:
        body = "x" * 100
        put_rate = _rate(jobs, lambda: client.put(body))

        def reserve_delete() -> None:
            client.delete(client.reserve(timeout=1))

        return put_rate, _rate(jobs, reserve_delete)


def main() -> None:
    """Run both servers and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, tuple[float, float]] = {}
    for name, server in (("real", real_beanstalkd), ("fake", fake_beanstalkd)):
        best_put = best_rd = 0.0
        for _ in range(args.rounds):
            with server() as address:
                put_rate, rd_rate = measure(address, args.jobs)
            best_put, best_rd = max(best_put, put_rate), max(best_rd, rd_rate)
        results[name] = (best_put, best_rd)
        print(f"{name}: put {best_put:9.0f} ops/s   reserve+delete {best_rd:9.0f} ops/s")
    real, fake = results["real"], results["fake"]
    print(f"ratio fake/real: put {fake[0] / real[0]:.2f}   reserve+delete {fake[1] / real[1]:.2f}")
    print_start_up(args.rounds)


def _ready_after(command: list[str], port: int) -> float:
    """Seconds from starting ``command`` until ``port`` accepts a connection."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return time.perf_counter() - started
            except OSError:
                time.sleep(0.002)
    finally:
        process.terminate()
        process.wait()


def print_start_up(rounds: int) -> None:
    """The command line's start-up, interpreter included (the test suite asserts none)."""
    binary = shutil.which("beanstalkd") or "beanstalkd"
    for name, command in (
        ("real", [binary, "-l", "127.0.0.1", "-p"]),
        ("fake", [sys.executable, "-m", "fakebeanstalk", "-l", "127.0.0.1", "-p"]),
    ):
        times = []
        for _ in range(rounds):
            port = _free_port()
            times.append(_ready_after([*command, str(port)], port))
        print(f"{name}: listening {min(times) * 1000:6.0f} ms after start (best of {rounds})")


if __name__ == "__main__":
    main()
