"""Draining one beanstalkd server of a bonded queue, so that it can be retired.

Every job the server holds that has a record in the store is moved to the other servers
through that record: taken out of reach on the drained server (``reserve-job``: no worker
can start it meanwhile), put again on another server (the recovery sweeper's claim, put and
swap, so a concurrent sweeper never puts it twice), then deleted from the drained server. A
job a worker has reserved is left to that worker (it finishes there, or comes back ready and
a later drain moves it). Jobs without a record (inline jobs, or another application's) cannot
be moved: they are counted and left. Producers should stop putting on the server first (take
it out of their ``servers``), or the drain chases new arrivals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.wire import ReservedJob
from kqueue.config import QueueConfig, format_address, parse_address
from kqueue.errors import BrokerError, ConfigurationError
from kqueue.serialization import decode_body
from kqueue.stores.base import JobRecord, Store
from kqueue.sweeper import Sweep, SweepReport

logger = logging.getLogger("kqueue")

PAGE = 200
"""Records moved per round: one reserve-job burst, one claim, one put burst, one swap."""


@dataclass
class DrainReport:
    """What a drain did: ``moved`` jobs now on other servers, ``running`` left to the
    workers that had them reserved, ``unmoved`` jobs a record does not describe."""

    server: str
    server_id: str = ""
    moved: int = 0
    running: int = 0
    unmoved: int = 0
    errors: list[str] = field(default_factory=list)


def drain_server(
    config: QueueConfig, store: Store | None, address: str, *, grace_claim: float = 60.0
) -> DrainReport:
    """Move every job of the server at ``address`` to the queue's other servers (see the
    module docstring). ConfigurationError if the queue has no such server, or no other."""
    if store is None:
        raise ConfigurationError(
            "draining a server moves jobs through their records: needs a store"
        )
    drained_at = parse_address(address)
    if drained_at not in config.addresses:
        raise ConfigurationError(f"{address} is not one of the queue's servers ({config.address})")
    others = [a for a in config.addresses if a != drained_at]
    if not others:
        raise ConfigurationError("the queue has no other server to move the jobs to")
    report = DrainReport(format_address(*drained_at))
    drained = config.new_connection(drained_at)
    targets = _reachable(config, others)
    try:
        report.server_id = drained.server_id()
        turn = 0
        after: str | None = None
        while page := store.scan_referencing(report.server_id, after=after, limit=PAGE):
            after = page[-1].key
            target = targets[turn % len(targets)]
            turn += 1
            sweep = Sweep(store, target, tube_prefix=config.tube_prefix, grace=0,
                          claim_lease=grace_claim, lanes=config.lanes)  # fmt: skip
            _move_page(store, drained, sweep, page, report)
        report.unmoved = _count_left(drained, config.tube_prefix) - report.running
    finally:
        drained.close()
        for conn in targets:
            conn.close()
    logger.info(
        "drained %s: %d job(s) moved, %d running there, %d without a record left",
        report.server, report.moved, report.running, report.unmoved,
    )  # fmt: skip
    return report


def _reachable(config: QueueConfig, addresses: list[tuple[str, int]]) -> list[BeanstalkConnection]:
    conns = []
    for address in addresses:
        conn = config.new_connection(address)
        try:
            conn.connect()
        except BrokerError as exc:
            logger.warning("drain: %s left out: %s", format_address(*address), exc)
            continue
        conns.append(conn)
    if not conns:
        raise BrokerError("no other server answers: nowhere to move the jobs")
    return conns


def _move_page(
    store: Store,
    drained: BeanstalkConnection,
    sweep: Sweep,
    page: list[JobRecord],
    report: DrainReport,
) -> None:
    held: dict[str, ReservedJob] = {}
    for record in page:
        assert record.ref is not None
        job = drained.reserve_job(record.ref.job_id)
        body = None if job is None else decode_body(job.body)
        if job is None:
            report.running += 1  # reserved by a worker (or gone: the sweeper's business)
        elif body is None or body.key != record.key:
            drained.release(job.id, priority=record.priority, delay=0)  # not this record's
        else:
            held[record.key] = job
    moving = [record for record in page if record.key in held]
    swept = SweepReport(server_id=sweep.conn.server_id())
    try:
        sweep.move(moving, swept)
    except BrokerError as exc:
        report.errors.append(f"moving {len(moving)} job(s): {exc}")
    priorities = {record.key: record.priority for record in page}
    now_at = store.get_status_many(list(held))
    for key, job in held.items():
        status = now_at.get(key)
        gone = status is None or status.ref is None or status.ref.server_id != report.server_id
        if gone:  # moved (or finished meanwhile): the old copy goes
            drained.delete(job.id)
            report.moved += status is not None
        else:
            drained.release(job.id, priority=priorities[key], delay=0)  # try again later


def _count_left(conn: BeanstalkConnection, tube_prefix: str) -> int:
    """Jobs still on the drained server in this queue's tubes (any state)."""
    left = 0
    for tube in conn.list_tubes():
        if tube.startswith(tube_prefix):
            stats = conn.stats_tube(tube) or {}
            left += stats.get("current-jobs-ready", 0) + stats.get("current-jobs-delayed", 0)
            left += stats.get("current-jobs-buried", 0) + stats.get("current-jobs-reserved", 0)
    return left
