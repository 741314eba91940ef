"""The operator commands: stats, put, peek, buried, kick, purge, suspend, resume, sweep."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Any

from kqueue.beanstalk.wire import JobStats, ReservedJob
from kqueue.cli.config import Settings
from kqueue.cli.output import Progress, print_json, table
from kqueue.errors import ConfigurationError, JobNotFoundError, ValidationError
from kqueue.queue import KQueue
from kqueue.serialization import decode_body
from kqueue.stores.base import JobRecord, iter_records
from kqueue.sweeper import RecoverySweeper

EXIT_OK = 0


def stats_rows(queue: KQueue) -> list[dict[str, Any]]:
    """Per job type: counts in beanstalkd, watchers, suspension and stored records."""
    snapshot = queue.stats()
    rows = []
    for job_type, tube in sorted(snapshot.job_types.items()):
        rows.append(
            {
                "job_type": job_type,
                "ready": tube.get("current-jobs-ready", 0),
                "delayed": tube.get("current-jobs-delayed", 0),
                "reserved": tube.get("current-jobs-reserved", 0),
                "buried": tube.get("current-jobs-buried", 0),
                "workers": tube.get("current-watching", 0),
                "suspended": tube.get("pause", 0) > 0,
                "stored": None if snapshot.stored is None else snapshot.stored.get(job_type, 0),
            }
        )
    return rows


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print the per job type table (or JSON); with --watch, refresh it until Ctrl-C."""
    with settings.open_queue() as queue:
        while True:
            rows = stats_rows(queue)
            if args.json:
                print_json({"beanstalkd": f"{settings.host}:{settings.port}", "job_types": rows})
            else:
                if args.watch:
                    sys.stdout.write("\x1b[2J\x1b[H")
                    print(time.strftime("%H:%M:%S"), settings.describe())
                headers = list(rows[0]) if rows else ["job_type", "ready", "delayed"]
                body = [[row[h] for h in headers] for row in rows]
                print(table(headers, body) if rows else "no job types yet")
            if not args.watch:
                return EXIT_OK
            sys.stdout.flush()
            time.sleep(args.watch)


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    """Add one job; the payload is JSON."""
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"payload is not JSON: {exc}") from exc
    with settings.open_queue() as queue:
        job_id = queue.add_job(
            args.jobtype, payload, priority=args.priority, delay=args.delay, ttr=args.ttr
        )
    print(job_id)
    return EXIT_OK


def describe_job(queue: KQueue, found: ReservedJob) -> dict[str, Any]:
    """What an operator wants to see of one job: state, type, payload, attempts, error."""
    try:
        stats: JobStats = queue.admin.job_stats(found.id)
    except JobNotFoundError:
        stats = {}
    info: dict[str, Any] = {"id": found.id, "state": stats.get("state"), "tube": stats.get("tube")}
    body = decode_body(found.body)
    if body is None:
        info["body"] = found.body.decode("utf-8", "replace")
        return info
    info.update(job_type=body.job_type, priority=body.priority, ttr=body.ttr, key=body.key)
    payload = body.payload
    if body.stored and queue.store is not None:
        record = queue.store.get(body.key)
        if record is None:
            info["record"] = "gone (the job is done or purged)"
            return info
        payload = record.payload
        info.update(attempts=record.attempts, last_error=record.last_error)
    info["payload"] = _show_payload(queue, body.codec, payload)
    return info


def _show_payload(queue: KQueue, codec: str, payload: bytes) -> Any:
    data = queue.codecs.decode(codec, payload)
    return data if not isinstance(data, bytes) else repr(data)


def cmd_peek(args: argparse.Namespace, settings: Settings) -> int:
    """Show a job by id, or the next ready / delayed / buried job of a type."""
    with settings.open_queue() as queue:
        if args.target.isdigit():
            found = queue.admin.peek_job(int(args.target))
        else:
            found = queue.admin.peek_next(args.target, args.state)
        if found is None:
            raise JobNotFoundError(f"no such job: {args.target} ({args.state})")
        print_json(describe_job(queue, found))
    return EXIT_OK


def cmd_buried(args: argparse.Namespace, settings: Settings) -> int:
    """List the dead letters of a type with their last errors."""
    with settings.open_queue() as queue:
        count = queue.admin.tube_stats(args.jobtype).get("current-jobs-buried", 0)
        print(f"{count} buried job(s) of type {args.jobtype}")
        if queue.store is None:
            first = queue.admin.peek_next(args.jobtype, "buried")
            if first is not None:
                print("oldest (no store, so only that one can be shown):")
                print_json(describe_job(queue, first))
            return EXIT_OK
        rows = [
            [record.key, record.attempts, (record.last_error or "")[:80]]
            for record in _scan_buried(queue, args.jobtype, args.limit)
        ]
        if rows:
            print(table(["key", "attempts", "last_error"], rows))
    return EXIT_OK


def _scan_buried(queue: KQueue, job_type: str, limit: int) -> list[JobRecord]:
    assert queue.store is not None
    buried = (r for r in iter_records(queue.store, job_type=job_type) if r.state == "buried")
    return list(itertools.islice(buried, limit))


def cmd_kick(args: argparse.Namespace, settings: Settings) -> int:
    """Kick buried jobs of a type back to ready (all by default), each with a fresh budget."""
    with settings.open_queue() as queue:
        kicked = queue.kick_buried(args.jobtype, args.count)
        print(f"kicked {kicked} job(s) of type {args.jobtype}")
    return EXIT_OK


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    """Delete waiting jobs of a type (those matching --match), after asking."""
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
    return EXIT_OK


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise ValidationError(f"{question} Refusing to ask on a non-terminal: pass --yes")
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


def cmd_suspend(args: argparse.Namespace, settings: Settings) -> int:
    """Hold the jobs of a type for every worker."""
    with settings.open_queue() as queue:
        queue.suspend(args.jobtype)
        if queue.store is None:
            print(
                "note: without a store, the suspension lasts while the tube exists", file=sys.stderr
            )
    print(f"suspended {args.jobtype}")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver the jobs of a suspended type again."""
    with settings.open_queue() as queue:
        queue.resume(args.jobtype)
    print(f"resumed {args.jobtype}")
    return EXIT_OK


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """One recovery pass; prints its report."""
    with settings.open_queue() as queue:
        total = queue.store.count() if queue.store is not None else None
        progress = Progress("sweeping", total)
        report = queue.sweep(grace=args.grace, progress=progress.advance)
        progress.done()
    fields = {k: v for k, v in vars(report).items() if k != "errors"}
    if args.json:
        print_json(vars(report))
    else:
        print(table(["field", "value"], [[k, v] for k, v in fields.items()]))
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
            raise ConfigurationError("recovery needs a bulk store: --store or KQUEUE_STORE")
        sweeper = RecoverySweeper(queue, interval=args.interval, grace=args.grace).start()
        stop.wait()
        sweeper.stop()
    print(f"sweeper stopped after {sweeper.passes} pass(es): {dict(sweeper.totals)}")
    return EXIT_OK
