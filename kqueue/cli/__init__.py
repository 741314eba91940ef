"""The ``kqueue`` command: run workers, operate and watch queues, and the demo.

Exit codes: 0 success; 1 a kqueue error (connection, store, job not found, refused
confirmation); 2 bad usage or input (unknown flag, import path that does not resolve, payload
that is not JSON, store URL that does not parse); 3 a worker stopped at once by a second signal;
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kqueue.cli import commands
from kqueue.cli.config import Settings, environment
from kqueue.cli.logs import setup_logging
from kqueue.errors import ConfigurationError, KQueueError, ValidationError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG = """\
examples:
  kqueue demo                                   the whole story, no servers needed
  kqueue worker myapp.jobs:queue --processes 4  run an application's handlers
  kqueue stats --watch 2                        job counts per type, refreshed
  kqueue put email.send '{"to": "ada@example.com"}' --priority 9000
  kqueue buried email.send                      dead letters with their last errors
  kqueue kick email.send                        retry every buried job of the type
  kqueue purge email.send --match '"to": "spam' delete matching waiting jobs (asks first)
  kqueue sweeper --interval 30                  recovery passes forever

environment: KQUEUE_BEANSTALKD=host:port  KQUEUE_STORE=redis://...|postgresql+psycopg://...|
sqlite:///path  KQUEUE_PREFIX=kq-   (flags win over the environment)
exit codes: 0 ok, 1 kqueue error, 2 bad usage or input, 3 worker forced to stop, 130 Ctrl-C
"""

Command = Callable[[argparse.Namespace, Settings], int]


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type that accepts only numbers above zero."""

    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


POSITIVE_FLOAT = _positive(float)
POSITIVE_INT = _positive(int)


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--beanstalkd", metavar="HOST:PORT", help="env KQUEUE_BEANSTALKD")
    group.add_argument("--store", metavar="URL", help="bulk store URL, env KQUEUE_STORE")
    group.add_argument("--prefix", metavar="PREFIX", help="tube prefix, env KQUEUE_PREFIX")
    group.add_argument("--log-level", metavar="LEVEL", help="default INFO (demo: CRITICAL)")
    group.add_argument("--log-json", action="store_true", help="log JSON lines")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="kqueue",
        description="Reliable real-time job queue on beanstalkd.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        _add_connection_flags(cmd)
        cmd.set_defaults(func=func)
        return cmd

    _worker_parser(command)
    _inspection_parsers(command)
    _admin_parsers(command)
    _demo_parser(command)
    return parser


_CommandMaker = Callable[[str, Command, str], argparse.ArgumentParser]


def _inspection_parsers(command: _CommandMaker) -> None:
    stats = command("stats", commands.cmd_stats, "job counts per type")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument(
        "--watch", type=POSITIVE_FLOAT, metavar="SECONDS", help="refresh every SECONDS"
    )
    put = command("put", commands.cmd_put, "add one job (payload in JSON)")
    put.add_argument("jobtype")
    put.add_argument("payload", help="JSON, e.g. '{\"id\": 7}'")
    put.add_argument("--priority", type=int, default=10000)
    put.add_argument("--delay", type=float, default=0)
    put.add_argument("--ttr", type=int, default=30)
    peek = command("peek", commands.cmd_peek, "show a job by id, or the next of a type")
    peek.add_argument("target", help="a job id, or a job type")
    peek.add_argument(
        "--state", choices=["ready", "delayed", "buried"], default="ready", help="with a type"
    )
    buried = command("buried", commands.cmd_buried, "list buried jobs with their last errors")
    buried.add_argument("jobtype")
    buried.add_argument("--limit", type=POSITIVE_INT, default=50)


def _admin_parsers(command: _CommandMaker) -> None:
    kick = command("kick", commands.cmd_kick, "kick buried jobs back to ready")
    kick.add_argument("jobtype")
    kick.add_argument("count", type=POSITIVE_INT, nargs="?", help="how many (default: all buried)")
    purge = command("purge", commands.cmd_purge, "delete waiting jobs of a type")
    purge.add_argument("jobtype")
    purge.add_argument("--match", metavar="REGEX", help="only payloads matching REGEX")
    purge.add_argument("--yes", action="store_true", help="do not ask")
    for name, func in (("suspend", commands.cmd_suspend), ("resume", commands.cmd_resume)):
        command(name, func, f"{name} a job type for every worker").add_argument("jobtype")
    sweep = command("sweep", commands.cmd_sweep, "one recovery pass")
    sweep.add_argument("--grace", type=float, help="skip records younger than this (s)")
    sweep.add_argument("--json", action="store_true")
    sweeper = command("sweeper", commands.cmd_sweeper, "recovery passes until stopped")
    sweeper.add_argument("--interval", type=POSITIVE_FLOAT, default=30.0)
    sweeper.add_argument("--grace", type=float)


def _worker_parser(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    from kqueue.cli.worker_command import cmd_worker

    worker = command("worker", cmd_worker, "run an application's handlers")
    worker.add_argument("app", help="MODULE:ATTRIBUTE of a KQueue, e.g. myapp.jobs:queue")
    worker.add_argument("--processes", type=POSITIVE_INT, default=1, help="worker processes")
    worker.add_argument("--jobtypes", metavar="A,B", help="serve only these job types")
    worker.add_argument("--burst", action="store_true", help="exit when nothing is ready")
    worker.add_argument("--sweep-interval", type=POSITIVE_FLOAT, metavar="SECONDS")
    worker.add_argument("--grace", type=float, default=30.0, help="shutdown grace (s)")
    worker.add_argument("--metrics-port", type=int, metavar="PORT", help="Prometheus metrics")


def _demo_parser(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    from kqueue.cli.demo import cmd_demo

    demo = command("demo", cmd_demo, "run the demo on an in-process broker and SQLite")
    demo.add_argument("--jobs", type=POSITIVE_INT, default=3000)
    demo.add_argument("--workers", type=POSITIVE_INT, default=2)
    demo.add_argument("--crash-at", type=float, default=0.4, help="fraction done")
    demo.add_argument("--seed", type=int, default=7)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = "CRITICAL" if args.command == "demo" else "INFO"
    setup_logging(args.log_level or quiet, args.log_json)
    try:
        settings = Settings.from_args(args, environment())
        code: int = args.func(args, settings)
        return code
    except (ValidationError, ConfigurationError) as exc:
        print(f"kqueue {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KQueueError as exc:
        print(f"kqueue {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
