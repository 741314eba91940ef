"""``kqueue worker MODULE:ATTRIBUTE``: import an application's queue and run it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading

from kqueue.aio import AsyncKQueue
from kqueue.aio.runner import is_async_handler
from kqueue.aio.worker import AsyncWorker
from kqueue.cli.config import Settings, load_queue, rebind
from kqueue.cli.scheduler_command import check_schedules
from kqueue.scheduler import Scheduler
from kqueue.worker import Worker

logger = logging.getLogger("kqueue")

__all__ = ["child_argv", "cmd_worker", "load_queue", "rebind", "supervise"]


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the application's handlers, in this process or in --processes children: on the
    sync worker, or on an asyncio one (--concurrency above 1, or any ``async def`` handler)."""
    if args.processes > 1:
        return _supervise_with_metrics(args, settings)
    queue = rebind(load_queue(args.app), settings)
    if args.metrics_for_parent:
        from kqueue.middleware.prometheus import record_for_parent

        record_for_parent(queue)
    elif args.metrics_port:
        from kqueue.middleware.prometheus import serve_metrics

        serve_metrics(queue, args.metrics_port, addr=args.metrics_addr)
    job_types = args.jobtypes.split(",") if args.jobtypes else None
    if args.concurrency > 1 or any(is_async_handler(s.handler) for s in queue.handlers.values()):
        return AsyncWorker(
            AsyncKQueue.from_queue(queue),
            concurrency=args.concurrency,
            job_types=job_types,
            burst=args.burst,
            grace_period=args.grace,
            sweep_interval=args.sweep_interval,
        ).run()
    worker = Worker(
        queue,
        job_types=job_types,
        burst=args.burst,
        grace_period=args.grace,
        sweep_interval=args.sweep_interval,
    )
    if not args.scheduler:
        return worker.run()
    check_schedules(queue)
    with Scheduler(queue):  # every worker may run one: the store adds one job per tick
        return worker.run()


def _supervise_with_metrics(args: argparse.Namespace, settings: Settings) -> int:
    """The parent of --processes children: it serves their metrics on one port (the children
    record them in a shared directory) and hands them the store URL by environment, not on
    their command line (where ``ps`` shows it)."""
    env = dict(os.environ)
    if settings.store_url is not None:
        env["KQUEUE_STORE"] = settings.store_url
    argv = child_argv(sys.argv[1:])
    if not args.metrics_port:
        return supervise(args.processes, argv, env=env)
    from kqueue.middleware.prometheus import serve_children_metrics

    with tempfile.TemporaryDirectory(prefix="kqueue-metrics-") as directory:
        env["PROMETHEUS_MULTIPROC_DIR"] = directory
        queue = rebind(load_queue(args.app), settings)
        serve_children_metrics(
            queue, args.metrics_port, directory=directory, addr=args.metrics_addr
        )
        try:
            return supervise(args.processes, [*argv, "--metrics-for-parent"], env=env)
        finally:
            queue.close()


_CHILD_DROPS = {"--processes": 1, "--store": 1, "--metrics-port": 1, "--metrics-addr": 1}
"""Flags a child does not get (and how many values follow each)."""


def child_argv(argv: list[str]) -> list[str]:
    """The parent's arguments for one child: without --processes, --store (the child gets it
    by environment) and the metrics flags (the parent serves), with ``--processes 1``."""
    out: list[str] = []
    skip = 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in _CHILD_DROPS:
            skip = 0 if "=" in arg else _CHILD_DROPS[name]
            continue
        out.append(arg)
    return [*out, "--processes", "1"]


RESTART_DELAYS = (1.0, 30.0)
"""Seconds before a dead child is started again: the first, doubling up to the longest."""


class _Children:
    """The worker processes of a supervisor, started again with a backoff when one dies."""

    def __init__(self, count: int, argv: list[str], env: dict[str, str] | None) -> None:
        self.argv, self.env = argv, env
        self.stopping = threading.Event()
        self.restarts = 0
        self._delay = RESTART_DELAYS[0]
        self.processes = [self._start() for _ in range(count)]

    def _start(self) -> subprocess.Popen[bytes]:
        # Each child in its own session: a terminal's Ctrl-C reaches only the parent, which
        # forwards it once (a child that got it twice would stop at once, not gracefully).
        command = [sys.executable, "-m", "kqueue", *self.argv]
        return subprocess.Popen(command, start_new_session=True, env=self.env)

    def forward(self, signum: int) -> None:
        """Pass a signal on to every running child; nothing is started again after it."""
        self.stopping.set()
        for child in self.processes:
            if child.poll() is None:
                child.send_signal(signum)

    def watch(self) -> list[int]:
        """Wait for every child; one that dies before a signal is started again."""
        while True:
            codes = [child.poll() for child in self.processes]
            finished = [code for code in codes if code is not None]
            if len(finished) == len(codes) and (self.stopping.is_set() or not any(finished)):
                return finished
            for index, code in enumerate(codes):
                if code and not self.stopping.is_set():
                    self._restart(index, code)
            self.stopping.wait(0.1)

    def _restart(self, index: int, code: int) -> None:
        logger.error("a worker process exited with %s; another starts in %g s", code, self._delay)
        if self.stopping.wait(self._delay):
            return
        self._delay = min(self._delay * 2, RESTART_DELAYS[1])
        self.processes[index] = self._start()
        self.restarts += 1


def supervise(count: int, argv: list[str], *, env: dict[str, str] | None = None) -> int:
    """Start ``count`` worker processes, forward SIGTERM/SIGINT to them, start again any
    that dies (with a backoff), and wait for all; the worst exit code.

    Each child has its own connections (the original kqueue's clustered mode).
    """
    children = _Children(count, argv, env)
    handlers = {
        signum: signal.signal(signum, lambda number, _frame: children.forward(number))
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        codes = children.watch()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return max(codes)
