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

from kqueue.cli import commands, history, operations
from kqueue.cli.config import APP_TARGET, Settings, environment
from kqueue.cli.logs import setup_logging
from kqueue.cli.lookup import parse_priority
from kqueue.errors import ConfigurationError, KQueueError, ValidationError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG = """\
examples:
  kqueue demo                                   the whole story, no servers needed
  kqueue worker myapp.jobs:queue --processes 4  run an application's handlers
  kqueue stats myapp.jobs:queue                 per type: beanstalkd's and the store's counts
  kqueue stats --watch 2                        the same, refreshed (KQUEUE_APP names the app)
  kqueue put myapp.jobs:queue email.send '{"to": "ada@example.com"}' --priority high
  kqueue buried myapp.jobs:queue email.send     dead letters with their last errors
  kqueue kick myapp.jobs:queue email.send       retry every buried job of the type
  kqueue peek myapp.jobs:queue KEY-OR-ID        one job by record key or beanstalkd id
  kqueue drain-server myapp.jobs:queue H:P      move a server's jobs to the others (retire it)
  kqueue show myapp.jobs:queue KEY              status, failed attempts and result of a job
  kqueue purge myapp.jobs:queue email.send --match '"to":"spam@'
                                                delete matching waiting jobs (asks first;
                                                payloads are stored as compact JSON)
  kqueue sweeper myapp.jobs:queue --interval 30 recovery passes forever
  kqueue scheduler myapp.jobs:queue             add the jobs of the app's periodic schedules
  kqueue dashboard myapp.jobs:queue --port 8470 the web dashboard on 127.0.0.1

Every command but demo takes the application's queue (MODULE:ATTR) first: it then runs with
the application's beanstalkd, store, key prefix, tube prefix and codecs. Without one, the
flags and environment say where to go: KQUEUE_BEANSTALKD=host:port  KQUEUE_STORE=redis://...|
postgresql+psycopg://...|sqlite:///path (?prefix=KEYPREFIX in the URL, or KQUEUE_STORE_PREFIX)
KQUEUE_PREFIX=kq- (the tube prefix)  KQUEUE_LANES=N (job types share N tubes)
KQUEUE_APP=myapp.jobs:queue. Flags win over the
environment, and both over the application's own settings.
exit codes: 0 ok, 1 kqueue error, 2 bad usage or input, 3 worker forced to stop, 130 Ctrl-C
"""

DEFAULT_LOG_LEVELS = {"worker": "INFO", "sweeper": "INFO", "scheduler": "INFO", "demo": "CRITICAL"}
"""kqueue's log level when --log-level is not given. Long-running commands log their life at
INFO; a one-shot command prints its result on stdout and logs only problems (WARNING)."""

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


def _add_connection_flags(parser: argparse.ArgumentParser, *, app: bool) -> None:
    group = parser.add_argument_group("connection")
    if app:
        group.add_argument(
            "--app",
            metavar="MODULE:ATTR",
            help="the application's KQueue (or give it first: kqueue CMD MODULE:ATTR ...); "
            "env KQUEUE_APP",
        )
    group.add_argument(
        "--beanstalkd",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="env KQUEUE_BEANSTALKD; several, comma-separated: one queue over all of them",
    )
    group.add_argument(
        "--store",
        metavar="URL",
        help="bulk store URL (?prefix=KEYPREFIX kept by kqueue), env KQUEUE_STORE",
    )
    group.add_argument(
        "--store-prefix", metavar="PREFIX", help="store key prefix, env KQUEUE_STORE_PREFIX"
    )
    group.add_argument("--prefix", metavar="PREFIX", help="tube prefix, env KQUEUE_PREFIX")
    group.add_argument(
        "--lanes", metavar="N", help="job types share N tubes (0: one each), env KQUEUE_LANES"
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL[,LOGGER=LEVEL]",
        help="kqueue's log level (default INFO for worker and sweeper, else WARNING); "
        "other libraries stay at WARNING unless named, e.g. DEBUG,redis=DEBUG",
    )
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
        _add_connection_flags(cmd, app=name not in ("worker", "demo"))
        cmd.set_defaults(func=func)
        return cmd

    _worker_parser(command)
    _inspection_parsers(command)
    _admin_parsers(command)
    _demo_parser(command)
    _dashboard_parser(command)
    return parser


_CommandMaker = Callable[[str, Command, str], argparse.ArgumentParser]


def _inspection_parsers(command: _CommandMaker) -> None:
    stats = command("stats", commands.cmd_stats, "job counts per type")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument(
        "--watch", type=POSITIVE_FLOAT, metavar="SECONDS", help="refresh every SECONDS"
    )
    put = command("put", commands.cmd_put, "add a job (payload in JSON), or many (--file)")
    put.add_argument("jobtype")
    put.add_argument("payload", nargs="?", help="JSON, e.g. '{\"id\": 7}'")
    put.add_argument("--file", metavar="PATH", help="one JSON payload per line ('-': stdin)")
    put.add_argument(
        "--priority",
        type=parse_priority,
        default="normal",
        help="urgent, high, normal (default), low, bulk, or 0..4294967295 (lower runs first)",
    )
    put.add_argument("--delay", type=float, default=0)
    put.add_argument("--ttr", type=int, default=30)
    peek = command("peek", commands.cmd_peek, "show a job by id or key, or the next of a type")
    peek.add_argument("target", help="a beanstalkd job id, a record key, or a job type")
    peek.add_argument(
        "--state", choices=["ready", "delayed", "buried"], default="ready", help="with a type"
    )
    buried = command("buried", commands.cmd_buried, "list buried jobs with their last errors")
    buried.add_argument("jobtype")
    buried.add_argument("--limit", type=POSITIVE_INT, default=50)
    buried.add_argument(
        "--history", action="store_true", help="every failed attempt kept, under each job"
    )
    show = command("show", history.cmd_show, "a job's status, failed attempts and result")
    show.add_argument("key", help="the job's record key (32 hex digits)")
    show.add_argument("--json", action="store_true", help="machine-readable output")


def _admin_parsers(command: _CommandMaker) -> None:
    kick = command("kick", operations.cmd_kick, "kick buried jobs back to ready")
    kick.add_argument("jobtype")
    kick.add_argument("count", type=POSITIVE_INT, nargs="?", help="how many (default: all buried)")
    purge = command("purge", operations.cmd_purge, "delete waiting jobs of a type")
    purge.add_argument("jobtype")
    purge.add_argument(
        "--match",
        metavar="REGEX",
        help="only payloads matching REGEX, searched in the stored form: compact JSON, "
        'no spaces (\'"to":"spam@\')',
    )
    purge.add_argument("--yes", action="store_true", help="do not ask")
    for name, func in (("suspend", operations.cmd_suspend), ("resume", operations.cmd_resume)):
        command(name, func, f"{name} a job type for every worker").add_argument("jobtype")
    sweep = command("sweep", operations.cmd_sweep, "one recovery pass")
    sweep.add_argument("--grace", type=float, help="skip records younger than this (s)")
    sweep.add_argument("--json", action="store_true")
    drain = command(
        "drain-server",
        operations.cmd_drain_server,
        "move one server's jobs to the queue's other servers (to retire it)",
    )
    drain.add_argument("address", help="HOST:PORT, one of the queue's servers")
    drain.add_argument("--json", action="store_true")
    sweeper = command("sweeper", operations.cmd_sweeper, "recovery passes until stopped")
    sweeper.add_argument("--interval", type=POSITIVE_FLOAT, default=30.0)
    sweeper.add_argument("--grace", type=float)
    from kqueue.cli.scheduler_command import cmd_scheduler

    scheduler = command("scheduler", cmd_scheduler, "add the jobs of periodic schedules")
    scheduler.add_argument(
        "--grace", type=POSITIVE_FLOAT, default=60.0, help="a tick is on time this long (s)"
    )


def _worker_parser(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    from kqueue.cli.worker_command import cmd_worker

    worker = command("worker", cmd_worker, "run an application's handlers")
    worker.add_argument("app", help="MODULE:ATTRIBUTE of a KQueue, e.g. myapp.jobs:queue")
    worker.add_argument("--processes", type=POSITIVE_INT, default=1, help="worker processes")
    worker.add_argument(
        "--concurrency",
        type=POSITIVE_INT,
        default=1,
        help="jobs in flight per process, on one event loop (async def handlers)",
    )
    worker.add_argument("--jobtypes", metavar="A,B", help="serve only these job types")
    worker.add_argument("--burst", action="store_true", help="exit when nothing is ready")
    worker.add_argument("--sweep-interval", type=POSITIVE_FLOAT, metavar="SECONDS")
    worker.add_argument(
        "--scheduler", action="store_true", help="also add the jobs of periodic schedules"
    )
    worker.add_argument("--grace", type=float, default=30.0, help="shutdown grace (s)")
    worker.add_argument("--metrics-port", type=int, metavar="PORT", help="Prometheus metrics")
    worker.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="interface of the metrics endpoint (default 127.0.0.1; 0.0.0.0 for every one)",
    )
    # A child of --processes records metrics for its parent to serve (not for users).
    worker.add_argument("--metrics-for-parent", action="store_true", help=argparse.SUPPRESS)


def _demo_parser(command: Callable[[str, Command, str], argparse.ArgumentParser]) -> None:
    from kqueue.cli.demo import cmd_demo

    demo = command("demo", cmd_demo, "run the demo on an in-process broker and SQLite")
    demo.add_argument("--jobs", type=POSITIVE_INT, default=3000)
    demo.add_argument("--workers", type=POSITIVE_INT, default=2)
    demo.add_argument("--crash-at", type=float, default=0.4, help="fraction done")
    demo.add_argument("--seed", type=int, default=7)


def _dashboard_parser(command: _CommandMaker) -> None:
    from kqueue.cli.dashboard_command import DEFAULT_PORT, cmd_dashboard

    dashboard = command("dashboard", cmd_dashboard, "serve the web dashboard")
    dashboard.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: any free port"
    )
    dashboard.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="interface to listen on (default 127.0.0.1; any other needs a token)",
    )
    dashboard.add_argument(
        "--token",
        help="ask for this token before showing anything (env KQUEUE_DASHBOARD_TOKEN, "
        "better: a command line is visible to other users)",
    )
    dashboard.add_argument(
        "--refresh", type=float, default=5.0, metavar="SECONDS", help="live refresh (0: off)"
    )
    dashboard.add_argument(
        "--sample",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often the rates chart samples beanstalkd's counters (0: no chart)",
    )


def app_first(argv: Sequence[str]) -> list[str]:
    """``CMD MODULE:ATTR REST`` as ``CMD --app MODULE:ATTR REST`` (worker's target stays its
    own positional argument)."""
    words = list(argv)
    if len(words) > 1 and words[0] not in ("worker", "demo") and APP_TARGET.fullmatch(words[1]):
        return [words[0], "--app", words[1], *words[2:]]
    return words


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(app_first(sys.argv[1:] if argv is None else argv))
    try:
        setup_logging(
            args.log_level or DEFAULT_LOG_LEVELS.get(args.command, "WARNING"), args.log_json
        )
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
