"""``kqueue worker MODULE:ATTRIBUTE``: import an application's queue and run it."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from kqueue.cli.config import Settings, load_queue, rebind
from kqueue.worker import Worker

__all__ = ["child_argv", "cmd_worker", "load_queue", "rebind", "supervise"]


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the application's handlers, in this process or in --processes children."""
    if args.processes > 1:
        return supervise(args.processes, child_argv(sys.argv[1:]))
    queue = rebind(load_queue(args.app), settings)
    if args.metrics_port:
        from kqueue.middleware.prometheus import serve_metrics

        serve_metrics(queue, args.metrics_port)
    job_types = args.jobtypes.split(",") if args.jobtypes else None
    worker = Worker(
        queue,
        job_types=job_types,
        burst=args.burst,
        grace_period=args.grace,
        sweep_interval=args.sweep_interval,
    )
    return worker.run()


def child_argv(argv: list[str]) -> list[str]:
    """The parent's arguments for one child: the same, with ``--processes 1``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        out.append(arg)
    return [*out, "--processes", "1"]


def supervise(count: int, argv: list[str]) -> int:
    """Start ``count`` worker processes, forward SIGTERM/SIGINT to them, wait for all.

    Each child has its own connections (the original kqueue's clustered mode). The exit code
    is the worst of the children's.
    """
    # Each child in its own session: a terminal's Ctrl-C reaches only this parent, which
    # forwards it once (a child that got it twice would stop at once instead of gracefully).
    children = [
        subprocess.Popen([sys.executable, "-m", "kqueue", *argv], start_new_session=True)
        for _ in range(count)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return max(codes)
