"""The inspection commands, and put: stats, put, peek, buried."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from kqueue.admin import QueueStats
from kqueue.cli.config import Settings
from kqueue.cli.history import failure_line, format_time
from kqueue.cli.lookup import (
    KEY_SHAPE,
    describe_job,
    find_job,
    nothing_here_note,
    unwatched_type_warning,
)
from kqueue.cli.output import Progress, print_json, table
from kqueue.errors import BrokerError, JobNotFoundError, ValidationError
from kqueue.producer import NOT_SCHEDULED
from kqueue.queue import KQueue
from kqueue.serialization import decode_body
from kqueue.stores.base import AttemptFailure, JobRecord, iter_records

EXIT_OK = 0

STORE_COLUMNS = ("stored", "unscheduled", "awaiting_recovery", "dead_letters")
"""The store's side of a stats row (see :class:`kqueue.admin.StoredCounts`)."""


def stats_rows(snapshot: QueueStats) -> list[dict[str, Any]]:
    """Per job type beanstalkd or the store knows: beanstalkd's counts (ready, delayed,
    reserved, buried, workers, suspended) beside the store's (stored, unscheduled,
    awaiting_recovery, dead_letters; None without a store)."""
    rows = []
    for job_type in snapshot.all_job_types:
        tube = snapshot.job_types.get(job_type, {})
        row: dict[str, Any] = {
            "job_type": job_type,
            "ready": tube.get("current-jobs-ready", 0),
            "delayed": tube.get("current-jobs-delayed", 0),
            "reserved": tube.get("current-jobs-reserved", 0),
            "buried": tube.get("current-jobs-buried", 0),
            "workers": tube.get("current-watching", 0),
            "suspended": tube.get("pause", 0) > 0,
        }
        counts = None if snapshot.store is None else snapshot.store.get(job_type)
        row["stored"] = None if snapshot.store is None else (counts.records if counts else 0)
        for name in STORE_COLUMNS[1:]:
            row[name] = None if snapshot.store is None else getattr(counts, name, 0)
        rows.append(row)
    return rows


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print the per job type table (or JSON); with --watch, refresh it until Ctrl-C."""
    with settings.open_queue() as queue:
        note = nothing_here_note(queue)  # once: an empty store beside other prefixes' records
        while True:
            stats = queue.stats()
            rows = stats_rows(stats)
            if args.json:
                print_json(
                    {"beanstalkd": queue.config.address, "job_types": rows, **_servers_json(stats)}
                )
            else:
                if args.watch:
                    sys.stdout.write("\x1b[2J\x1b[H")
                    print(time.strftime("%H:%M:%S"), _where(queue))
                print_stats_table(rows)
                print_servers(stats)
            _note(note)
            note = None
            if not args.watch:
                return EXIT_OK
            sys.stdout.flush()
            time.sleep(args.watch)


def _servers_json(stats: QueueStats) -> dict[str, Any]:
    """Of a bonded queue: each server's state by address, and where each server id lived."""
    if stats.servers is None:
        return {}
    each = {
        address: {"error": one} if isinstance(one, str) else {"id": one.get("id")}
        for address, one in stats.servers.items()
    }
    return {"servers": each, "server_ids": stats.server_ids}


def print_servers(stats: QueueStats) -> None:
    """Of a bonded queue: one line per server: its id, or why it did not answer and the id
    recovery last saw answering there (the id the records of its jobs name)."""
    if stats.servers is None:
        return
    lived = {address: sid for sid, address in sorted((stats.server_ids or {}).items())}
    for address, one in stats.servers.items():
        if not isinstance(one, str):
            print(f"server {address}: id {one.get('id')}, {one.get('current-jobs-ready')} ready")
        elif address in lived:
            print(f"server {address}: not answering ({one}); last seen as id {lived[address]}")
        else:
            print(f"server {address}: not answering ({one})")


def _where(queue: KQueue) -> str:
    """The queue's beanstalkd, store and tube prefix, credentials redacted (store reprs)."""
    store = repr(queue.store) if queue.store is not None else "no store"
    return f"beanstalkd {queue.config.address}, {store}, tube prefix {queue.tube_prefix!r}"


def print_stats_table(rows: list[dict[str, Any]]) -> None:
    """The stats table, and a line on what waits for recovery (when something does)."""
    if not rows:
        print("no job types yet")
        return
    headers = [h for h in rows[0] if rows[0][h] is not None or h not in STORE_COLUMNS]
    print(table(headers, [[row[h] for h in headers] for row in rows]))
    waiting = sum((row["unscheduled"] or 0) + (row["awaiting_recovery"] or 0) for row in rows)
    if waiting:
        print(
            f"{waiting} stored job(s) are not in beanstalkd (unscheduled or awaiting_recovery):"
            " a sweeper puts them back (kqueue sweeper, worker --sweep-interval), or kqueue sweep"
        )


def _note(text: str | None, stream: TextIO | None = None) -> None:
    if text:
        print(text, file=stream or sys.stderr)


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    """Add one job (payload in JSON), or many: one JSON payload per line from --file
    (``-`` for stdin), in batches, with a progress bar. Input is read whole and checked
    before anything is added."""
    if (args.file is None) == (args.payload is None):
        raise ValidationError("put takes a payload (JSON) or --file, one of the two")
    payloads = _read_payloads(args.file) if args.file is not None else [_json(args.payload)]
    options = {"priority": args.priority, "delay": args.delay, "ttr": args.ttr}
    # Not opened up front: with a store, a job is accepted while beanstalkd is down.
    queue = settings.open_queue()
    try:
        _note(_unwatched_if_reachable(queue, args.jobtype))
        if args.file is not None:
            return _put_many(queue, args.jobtype, payloads, options)
        since = f"{time.time_ns() // 1_000_000 - 1:012x}"  # a key prefix: see kqueue.keys
        job_id = queue.add_job(args.jobtype, payloads[0], **options)
        key, server = _key_of(queue, job_id, args.jobtype, since)
    finally:
        queue.close()
    # id 0: accepted while beanstalkd was down; the producer's warning says so, once.
    on = f" on {server or '?'}" if queue.config.bonded and job_id != NOT_SCHEDULED else ""
    print(f"id {job_id}{on} key {key or '-'}")
    return EXIT_OK


def _json(text: str, where: str = "payload") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{where} is not JSON: {exc}") from exc


def _read_payloads(path: str) -> list[Any]:
    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    with stream:
        lines = list(enumerate(stream, 1))
    return [_json(line, f"line {number}") for number, line in lines if line.strip()]


def _unwatched_if_reachable(queue: KQueue, job_type: str) -> str | None:
    try:
        return unwatched_type_warning(queue, job_type)
    except BrokerError:
        return None  # beanstalkd is down: add_job says so, and the store takes the job


def _key_of(queue: KQueue, job_id: int, job_type: str, since: str) -> tuple[str | None, str | None]:
    """The record key of a job just put and the address of its server: read back from
    beanstalkd (of a bonded queue where several servers hold that id, from the newest record
    of its type naming it); for a job that did not reach beanstalkd, the newest unscheduled
    record of its type created ``since``."""
    if job_id != NOT_SCHEDULED:
        located = queue.admin.locate(job_id)
        if len(located) == 1:
            body = decode_body(located[0][1].body)
            return (body.key if body is not None else None), located[0][0]
        return _stored_key_of(queue, job_id, job_type, since)
    if queue.store is None:
        return None, None
    found = queue.store.scan_referencing(None, after=since, limit=1000)
    mine = [record.key for record in found if record.job_type == job_type]
    return (mine[-1] if mine else None), None


def _stored_key_of(
    queue: KQueue, job_id: int, job_type: str, since: str
) -> tuple[str | None, str | None]:
    """Of a bonded queue: the newest record of ``job_type`` written ``since`` naming job
    ``job_id``, and the address of the server its reference names (None: not found)."""
    if queue.store is None:
        return None, None
    found = queue.store.scan(after=since, limit=1000, job_type=job_type)
    mine = [r for r in found if r.ref is not None and r.ref.job_id == job_id]
    if not mine:
        return None, None
    ref = mine[-1].ref
    assert ref is not None
    held = queue.admin.peek_ref(ref)
    return mine[-1].key, None if held is None else held[0]


PUT_BATCH = 1000
"""Payloads per add_jobs call of a bulk put: the progress bar moves once per batch."""


def _put_many(queue: KQueue, job_type: str, payloads: list[Any], options: dict[str, Any]) -> int:
    progress = Progress(f"putting {job_type}", len(payloads))
    ids: list[int] = []
    for start in range(0, len(payloads), PUT_BATCH):
        batch = payloads[start : start + PUT_BATCH]
        ids += queue.add_jobs(job_type, batch, **options)
        progress.advance(len(batch))
    progress.done()
    unscheduled = ids.count(NOT_SCHEDULED)
    late = f" ({unscheduled} not yet in beanstalkd: the sweeper delivers them)"
    print(f"added {len(ids)} job(s) of type {job_type}{late if unscheduled else ''}")
    return EXIT_OK


def cmd_peek(args: argparse.Namespace, settings: Settings) -> int:
    """Show a job by beanstalkd id or record key, or the next of a type in a state."""
    with settings.open_queue() as queue:
        if args.target.isdigit() or KEY_SHAPE.fullmatch(args.target):
            found = find_job(queue, args.target)
        else:
            job = queue.admin.peek_next(args.target, args.state)
            if job is None:
                raise JobNotFoundError(f"no {args.state} job of type {args.target}")
            found = find_job(queue, str(job.id))
        print_json(describe_job(queue, found))
    return EXIT_OK


def cmd_buried(args: argparse.Namespace, settings: Settings) -> int:
    """List the dead letters of a type (record key, beanstalkd id) with their last failures:
    when, on which worker (host:pid), what; ``--history`` adds every failed attempt kept."""
    with settings.open_queue() as queue:
        count = queue.admin.tube_stats(args.jobtype).get("current-jobs-buried", 0)
        print(f"{count} buried job(s) of type {args.jobtype} in beanstalkd")
        if queue.store is None:
            first = queue.admin.peek_next(args.jobtype, "buried")
            if first is not None:
                print("oldest (no store, so only that one can be shown):")
                print_json(describe_job(queue, find_job(queue, str(first.id))))
            return EXIT_OK
        records = list(itertools.islice(_dead_letters(queue, args.jobtype), args.limit))
        histories = {r.key: queue.store.get_failures(r.key) for r in records}
        if records:
            print(table(BURIED_COLUMNS, [_buried_row(r, histories[r.key]) for r in records]))
        elif not count:
            _note(nothing_here_note(queue))
        for record in records if args.history else []:
            print(f"\n{record.key}: {len(histories[record.key])} failed attempt(s) kept")
            for failure in histories[record.key]:
                print(f"  {failure_line(failure)}")
    return EXIT_OK


BURIED_COLUMNS = ("key", "id", "attempts", "last_failed", "worker", "last_error")


def _buried_row(record: JobRecord, history: list[AttemptFailure]) -> list[object]:
    last = history[-1] if history else None
    return [
        record.key,
        record.ref.job_id if record.ref else "-",
        record.attempts,
        format_time(last.at) if last else "-",
        last.worker if last and last.worker else "-",
        (record.last_error or "")[:80],
    ]


def _dead_letters(queue: KQueue, job_type: str) -> Iterator[JobRecord]:
    assert queue.store is not None
    return (r for r in iter_records(queue.store, job_type=job_type) if r.state == "buried")
