"""The administration of a queue with lanes (see :mod:`kqueue.lanes`): where a type's jobs
wait, and finding them among a lane's jobs of other types (for :mod:`kqueue.admin`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.wire import ReservedJob
from kqueue.claims import is_claim
from kqueue.config import QueueConfig
from kqueue.job import tube_for
from kqueue.serialization import decode_body
from kqueue.stores.base import Store, iter_records

__all__ = ["buried_ids", "of_type", "peek_of_type", "tubes_of"]


def tubes_of(config: QueueConfig, job_type: str) -> list[str]:
    """Where jobs of a type wait: its tube; with lanes, its lane and its own tube (the jobs
    held while it is suspended)."""
    own = tube_for(job_type, config.tube_prefix)
    routed = config.tube_of(job_type)
    return [own] if routed == own else [routed, own]


def of_type(job_type: str, matcher: Callable[[bytes], bool] | None) -> Callable[[bytes], bool]:
    """A purge matcher that only takes bodies of ``job_type`` (lanes hold several types)."""

    def matches(raw: bytes) -> bool:
        body = decode_body(raw)
        if body is None or body.job_type != job_type:
            return False
        return matcher is None or matcher(raw)

    return matches


def peek_of_type(
    conn: BeanstalkConnection,
    config: QueueConfig,
    job_type: str,
    peek: Callable[[BeanstalkConnection], ReservedJob | None],
) -> ReservedJob | None:
    """beanstalkd shows only the next job of a tube: the next of the type's lane (or of its
    own tube) when that one is of the type; None otherwise."""
    for tube in tubes_of(config, job_type):
        conn.use(tube)
        found = peek(conn)
        body = None if found is None else decode_body(found.body)
        if body is not None and body.job_type == job_type:
            return found
    return None


def buried_ids(conn: BeanstalkConnection, store: Store, job_type: str) -> Iterator[int]:
    """The beanstalkd ids of a type's buried jobs, found through their records (in key
    order): each still held under the id its record's reference names."""
    for record in iter_records(store, job_type=job_type):
        ref = record.ref
        if record.state != "buried" or ref is None or is_claim(ref):
            continue
        found = conn.peek(ref.job_id)
        body = None if found is None else decode_body(found.body)
        if body is not None and body.key == record.key:
            yield ref.job_id
