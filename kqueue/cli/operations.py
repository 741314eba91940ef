"""The commands that change a queue: kick, purge, suspend, resume, sweep, sweeper.

Each prints its result once, on stdout; warnings and notes go to stderr.
"""

from __future__ import annotations

import argparse
import sys

from kqueue.admin import sweep_advice
from kqueue.cli.config import Settings
from kqueue.cli.lookup import nothing_here_note, unwatched_type_warning
from kqueue.cli.output import Progress, print_json, table
from kqueue.errors import ConfigurationError, ValidationError
from kqueue.sweeper import RecoverySweeper

EXIT_OK = 0


def cmd_kick(args: argparse.Namespace, settings: Settings) -> int:
    """Kick buried jobs of a type back to ready (all by default), each with a fresh budget."""
    with settings.open_queue() as queue:
        buried = queue.admin.tube_stats(args.jobtype).get("current-jobs-buried", 0)
        progress = Progress(f"kicking {args.jobtype}", min(buried, args.count or buried))
        kicked = queue.admin.kick_buried(args.jobtype, args.count, progress=progress.advance)
        progress.done()
        print(f"kicked {kicked} job(s) of type {args.jobtype}")
    return EXIT_OK


SPACED_JSON = (": ", ", ")


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """Delete waiting jobs of a type (those matching --match), after asking."""
    if args.match and any(gap in args.match for gap in SPACED_JSON):
        print(
            f'warning: payloads are stored as compact JSON ({{"to":"x"}}, no spaces); '
            f"--match {args.match!r} has a space after ':' or ',' and may never match",
            file=sys.stderr,
        )
    with settings.open_queue() as queue:
        stats = queue.admin.tube_stats(args.jobtype)
        waiting = (
            stats.get("current-jobs-ready", 0)
            + stats.get("current-jobs-delayed", 0)
            + stats.get("current-jobs-buried", 0)
        )
        what = f"matching {args.match!r}" if args.match else "all"
        if not args.yes and not _confirm(
            f"purge {what} of {waiting} waiting {args.jobtype} job(s)?"
        ):
            print("nothing purged", file=sys.stderr)
            return 1
        progress = Progress(f"purging {args.jobtype}", waiting)
        deleted = queue.purge_jobs(args.jobtype, args.match, progress=progress.advance)
        progress.done()
        print(f"purged {deleted} job(s) of type {args.jobtype}")
        if not deleted and not waiting:
            _note(nothing_here_note(queue))
    return EXIT_OK


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise ValidationError(f"{question} Refusing to ask on a non-terminal: pass --yes")
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


def _note(text: str | None) -> None:
    if text:
        print(text, file=sys.stderr)


def cmd_suspend(args: argparse.Namespace, settings: Settings) -> int:
    """Hold the jobs of a type for every worker."""
    with settings.open_queue() as queue:
        _note(unwatched_type_warning(queue, args.jobtype))
        queue.suspend(args.jobtype)
        if queue.store is None:
            _note("note: without a store, the suspension lasts while the tube exists")
    print(f"suspended {args.jobtype}")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver the jobs of a suspended type again."""
    with settings.open_queue() as queue:
        queue.resume(args.jobtype)
    print(f"resumed {args.jobtype}")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """One recovery pass; prints its report, and why nothing was put back when records were
    left because they were too young."""
    with settings.open_queue() as queue:
        if queue.store is None:
            raise ConfigurationError(
                "recovery needs a bulk store: --store, KQUEUE_STORE or the app"
            )
        progress = Progress("sweeping", queue.store.count())
        report = queue.sweep(grace=args.grace, progress=progress.advance)
        progress.done()
        grace = queue.config.recovery_grace if args.grace is None else args.grace
        empty = nothing_here_note(queue) if not report.scanned else None
    if args.json:
        print_json(vars(report))
    else:
        fields = {k: v for k, v in vars(report).items() if k != "errors"}
        print(table(["field", "value"], [[k, v] for k, v in fields.items()]))
    for error in report.errors:
        print("error:", error, file=sys.stderr)
    _note(sweep_advice(report, grace))
    _note(empty)
    return 1 if report.errors else EXIT_OK


def cmd_drain_server(args: argparse.Namespace, settings: Settings) -> int:
    """Move every job of one server to the others through their records (to retire it)."""
    with settings.open_queue() as queue:
        report = queue.drain_server(args.address)
    if args.json:
        print_json(vars(report))
    else:
        print(
            f"drained {report.server}: {report.moved} job(s) moved to the other servers, "
            f"{report.running} running there (left to their workers), {report.unmoved} "
            "without a record left"
        )
    for error in report.errors:
        print("error:", error, file=sys.stderr)
    return 1 if report.errors else EXIT_OK


def cmd_sweeper(args: argparse.Namespace, settings: Settings) -> int:
    """Recovery passes every --interval seconds until SIGINT/SIGTERM."""
    import signal
    import threading

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with settings.open_queue() as queue:
        if queue.store is None:
            raise ConfigurationError(
                "recovery needs a bulk store: --store, KQUEUE_STORE or the app"
            )
        sweeper = RecoverySweeper(queue, interval=args.interval, grace=args.grace).start()
        stop.wait()
        sweeper.stop()
    print(f"sweeper stopped after {sweeper.passes} pass(es): {dict(sweeper.totals)}")
    return EXIT_OK
