"""How an operator names things: priorities by name, jobs by record key or beanstalkd id;
and the hints a command adds when what it finds may not be what the operator meant."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from kqueue.beanstalk.wire import ReservedJob
from kqueue.errors import JobNotFoundError, ValidationError
from kqueue.job import PRIO_BULK, PRIO_HIGH, PRIO_LOW, PRIO_NORMAL, PRIO_URGENT
from kqueue.queue import KQueue
from kqueue.serialization import decode_body
from kqueue.sightings import sighted_at
from kqueue.stores.base import JobRecord, Store
from kqueue.sweeper import is_claim

PRIORITIES = {
    "urgent": PRIO_URGENT,
    "high": PRIO_HIGH,
    "normal": PRIO_NORMAL,
    "low": PRIO_LOW,
    "bulk": PRIO_BULK,
}
"""The named priorities of the README (lower runs first); any u32 is accepted too."""

KEY_SHAPE = re.compile(r"[0-9a-f]{32}")
"""A record key (see :mod:`kqueue.keys`): what identifies a job across retries and recovery."""


def parse_priority(text: str) -> int:
    """An argparse type: ``urgent``, ``high``, ``normal``, ``low``, ``bulk``, or a number."""
    named = PRIORITIES.get(text.lower())
    if named is not None:
        return named
    if text.isdigit() and int(text) < 2**32:
        return int(text)
    names = ", ".join(PRIORITIES)
    raise argparse.ArgumentTypeError(f"{text!r} is not a priority: {names}, or 0..4294967295")


@dataclass(frozen=True)
class FoundJob:
    """A job as beanstalkd holds it (``job``) and as the store keeps it (``record``); either
    may be missing: an inline job has no record, a lost or unscheduled one no beanstalkd job."""

    job: ReservedJob | None
    record: JobRecord | None
    key: str | None
    server: str | None = None
    """The address of the beanstalkd server holding ``job``."""
    also_on: tuple[str, ...] = ()
    """Other servers holding a job of the same id (ids are each server's own)."""


def find_job(queue: KQueue, target: str) -> FoundJob:
    """The job named by a record key (32 hex digits) or a beanstalkd id (fewer digits: ids
    are below 2**64); JobNotFoundError if none."""
    if target.isdigit() and not KEY_SHAPE.fullmatch(target):
        located = queue.admin.locate(int(target))
        if not located:
            raise JobNotFoundError(f"no job {target} in beanstalkd at {queue.config.address}")
        (server, job), others = located[0], tuple(address for address, _ in located[1:])
        body = decode_body(job.body)
        if body is None:
            return FoundJob(job, None, None, server, others)
        record = None
        if body.stored and queue.store is not None:
            record = queue.store.get(body.key)
        return FoundJob(job, record, body.key, server, others)
    if not KEY_SHAPE.fullmatch(target):
        raise ValidationError(f"{target!r} is neither a job id (digits) nor a record key")
    if queue.store is None:
        raise ValidationError("finding a job by its key needs the store: --store or the app")
    record = queue.store.get(target)
    if record is None:
        raise JobNotFoundError(f"no record {target} in {queue.store!r} (done, or purged?)")
    holder, held = _job_of(queue, record)
    return FoundJob(held, record, target, holder)


def _job_of(queue: KQueue, record: JobRecord) -> tuple[str | None, ReservedJob | None]:
    """beanstalkd's job for a record (and its server's address), if it holds it where the
    reference says."""
    if record.ref is None or is_claim(record.ref):
        return None, None
    found = queue.admin.peek_ref(record.ref)
    body = decode_body(found[1].body) if found is not None else None
    if found is None or body is None or body.key != record.key:
        return None, None
    return found


def describe_job(queue: KQueue, found: FoundJob) -> dict[str, Any]:
    """What an operator wants to see of one job: both its names (beanstalkd id and record
    key), state, type, payload, attempts and last error."""
    info: dict[str, Any] = {"id": None, "key": found.key, "state": None}
    if found.job is not None:
        info.update(_broker_side(queue, found.job, found.server))
        if queue.config.bonded:
            info["server"] = found.server
        if found.also_on:
            info["same_id_also_on"] = list(found.also_on)
    stored = info.pop("stored", False)
    record = found.record
    if record is None:
        if stored:
            info["record"] = "gone (the job is done or purged)"
        return info
    if found.job is None:
        info["state"] = _missing_state(record)
        if queue.config.bonded and record.ref is not None and not is_claim(record.ref):
            info["server_id"] = record.ref.server_id
            info["server_last_seen_at"] = sighted_at(queue.store).get(record.ref.server_id)
    info.update(
        job_type=record.job_type,
        priority=record.priority,
        ttr=record.ttr,
        attempts=record.attempts,
        last_error=record.last_error,
        record_state=record.state,
        payload=_show(queue, record.codec, record.payload),
    )
    return info


def _broker_side(queue: KQueue, job: ReservedJob, server: str | None) -> dict[str, Any]:
    try:
        stats = queue.admin.job_stats(job.id, server=server)
    except JobNotFoundError:
        stats = {}
    info: dict[str, Any] = {"id": job.id, "state": stats.get("state"), "tube": stats.get("tube")}
    body = decode_body(job.body)
    if body is None:
        info["body"] = job.body.decode("utf-8", "replace")
        return info
    info.update(key=body.key, job_type=body.job_type, priority=body.priority, ttr=body.ttr)
    info["stored"] = body.stored
    if not body.stored:
        info["payload"] = _show(queue, body.codec, body.payload)
    return info


def _missing_state(record: JobRecord) -> str:
    if record.ref is None:
        return "accepted, not yet in beanstalkd (the sweeper delivers it)"
    return "not in beanstalkd: awaiting recovery (run kqueue sweep, or a sweeper)"


def _show(queue: KQueue, codec: str, payload: bytes) -> Any:
    data = queue.codecs.decode(codec, payload)
    return data if not isinstance(data, bytes) else repr(data)


def other_prefixes(store: Store) -> list[str]:
    """The key prefixes (Redis) or table prefixes (SQL) of other kqueue stores in the same
    database, when this store's backend can tell; [] otherwise. Best effort: a hint."""
    from kqueue.stores.redis import RedisStore
    from kqueue.stores.sql import SQLStore

    if isinstance(store, RedisStore):
        return _redis_prefixes(store)
    if isinstance(store, SQLStore):
        return _sql_prefixes(store)
    return []


def _redis_prefixes(store: Any) -> list[str]:
    import redis

    try:  # SCAN walks the keyspace: only run when a command found nothing
        found = store.client.scan_iter(match="*idx", _type="ZSET", count=1000)
        names = {name.decode("utf-8", "replace")[:-3] for name in found}
    except (redis.RedisError, OSError):
        return []
    # <prefix>qidx (the unique-job index) also ends in "idx": it names no store of its own.
    unique_indexes = {name for name in names if name.endswith("q") and name[:-1] in names}
    return sorted(names - unique_indexes - {store.prefix})


def _sql_prefixes(store: Any) -> list[str]:
    import sqlalchemy as sa

    own = store.tables.records.name
    try:
        names = set(sa.inspect(store.engine).get_table_names())
    except sa.exc.SQLAlchemyError:
        return []
    return sorted(
        name[: -len("records")]
        for name in names
        if name.endswith("records") and name != own and f"{name[: -len('records')]}meta" in names
    )


def nothing_here_note(queue: KQueue) -> str | None:
    """A note for a command that found nothing, when the store is empty under its prefix
    but other kqueue prefixes in the same database hold records; None otherwise."""
    store = queue.store
    if store is None or store.count() > 0:
        return None
    others = other_prefixes(store)
    if not others:
        return None
    own = _own_prefix(store)
    # The likeliest meant first: those sharing the longest beginning with this one.
    others.sort(key=lambda other: (-_shared_start(other, own), other))
    shown = ", ".join(repr(p) for p in others[:5])
    more = f" (and {len(others) - 5} more)" if len(others) > 5 else ""
    return (
        f"note: nothing stored under this store's prefix ({store!r}), but the same database "
        f"holds kqueue records under {shown}{more}: name the application (kqueue CMD "
        "myapp.jobs:queue) or put ?prefix=... in the store URL (or KQUEUE_STORE_PREFIX)"
    )


def _shared_start(one: str, other: str) -> int:
    """How many leading characters two strings share."""
    count = 0
    for a, b in zip(one, other, strict=False):
        if a != b:
            break
        count += 1
    return count


def _own_prefix(store: Store) -> str:
    """The key prefix (Redis) or table prefix (SQL) of ``store``; "" when it has none."""
    prefix = getattr(store, "prefix", None)
    if isinstance(prefix, str):
        return prefix
    tables = getattr(store, "tables", None)
    return tables.records.name[: -len("records")] if tables is not None else ""


def unwatched_type_warning(queue: KQueue, job_type: str) -> str | None:
    """A warning when no worker watches the job type's tube, the application has no handler
    for it, and the store (without one: beanstalkd's tube) has never seen it: a typo?"""
    if job_type in queue.handlers:
        return None
    tube = queue.admin.put_tube_stats(job_type)  # with lanes: its lane's
    if tube.get("current-watching", 0) > 0:
        return None
    if queue.store is not None and queue.store.count(job_type) > 0:
        return None
    if queue.store is None and tube.get("total-jobs", 0) > 0:
        return None  # without a store, beanstalkd's tube is all that remembers the type
    return (
        f"warning: no worker watches job type {job_type!r} and the store has never seen it "
        "(a typo?); doing it anyway"
    )
