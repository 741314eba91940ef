"""What became of one job, and how its attempts failed: ``kqueue show KEY`` and the failure
columns of ``kqueue buried``."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from typing import Any

from kqueue.cli.config import Settings
from kqueue.cli.lookup import KEY_SHAPE, describe_job, find_job
from kqueue.cli.output import print_json
from kqueue.errors import JobNotFoundError, ValidationError
from kqueue.queue import KQueue
from kqueue.stores.base import AttemptFailure

__all__ = ["TRACEBACK_LINES", "cmd_show", "failure_line", "format_time", "job_report"]

TRACEBACK_LINES = 12
"""How many of a traceback's last lines ``kqueue show`` prints per failure (--json: all)."""


def format_time(at: float) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def failure_line(failure: AttemptFailure) -> str:
    """One failed attempt on one line: when, where, which attempt, what."""
    worker = failure.worker or "?"
    return (
        f"{format_time(failure.at)}  {worker}  attempt {failure.attempt}  "
        f"{failure.error_type}: {failure.message}"
    )


def job_report(queue: KQueue, key: str) -> dict[str, Any]:
    """Everything known of the job with this record key: status, the job itself (as
    ``kqueue peek`` shows it), its failed attempts, and its kept outcome."""
    store = queue.store
    if store is None:
        raise ValidationError("show needs the store: name the application, or --store")
    report: dict[str, Any] = {"key": key, "status": queue.job_status(key)}
    try:
        report["job"] = describe_job(queue, find_job(queue, key))
    except JobNotFoundError:
        report["job"] = None
    report["failures"] = [asdict(failure) for failure in store.get_failures(key)]
    kept = store.get_result(key, now=time.time())
    if kept is not None:
        value: Any = queue.codecs.decode(kept.codec, kept.payload)
        report["result"] = {
            "outcome": kept.outcome,
            "value": value if not isinstance(value, bytes) else repr(value),
            "finished_at": format_time(kept.finished_at),
            "expires_at": format_time(kept.expires_at),
        }
    if report["status"] == "unknown" and report["job"] is None and not report["failures"]:
        raise JobNotFoundError(
            f"no job {key} in {store!r}: finished without a kept result, expired, or purged"
        )
    return report


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    """Show one job by record key: status, payload, every failed attempt kept (time, worker,
    exception, the end of its traceback) and its kept result."""
    if not KEY_SHAPE.fullmatch(args.key):
        raise ValidationError(f"{args.key!r} is not a record key (32 hex digits)")
    with settings.open_queue() as queue:
        report = job_report(queue, args.key)
    if args.json:
        print_json(report)
        return 0
    _print_report(report)
    return 0


def _print_report(report: dict[str, Any]) -> None:
    job = report["job"] or {}
    print(f"key       {report['key']}")
    print(f"status    {report['status']}")
    for name in ("id", "server", "job_type", "priority", "attempts", "last_error", "payload"):
        if job.get(name) is not None:
            print(f"{name:<9} {job[name]}")
    if job.get("server_id") is not None:  # of a bonded queue, its server not answering
        print(f"server    id {job['server_id']}, last seen at {job['server_last_seen_at']}")
    failures = [AttemptFailure(**item) for item in report["failures"]]
    print(f"failures  {len(failures)} kept (oldest first)" if failures else "failures  none")
    for failure in failures:
        print(f"  {failure_line(failure)}")
        for line in failure.traceback.rstrip().splitlines()[-TRACEBACK_LINES:]:
            print(f"      {line}")
    result = report.get("result")
    if result is not None:
        print(
            f"result    {result['outcome']}: {result['value']} (kept until {result['expires_at']})"
        )
