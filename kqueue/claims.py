"""Sweeper claims: the placeholder reference a recovery pass sets on a record while it puts
the record's job back into beanstalkd.

A claim is a :class:`~kqueue.stores.base.BrokerRef` whose server id is ``claim:<token>:<end>``
(the pass's token and when its lease ends, Unix seconds) and whose job id is that end again.
Setting it is a compare-and-set on the record's reference, which is how several sweepers
share a store without putting a job twice; a sweeper that dies mid-put leaves claims that
another pass takes over once their lease has ended. The end in the server id lets a pass skip
the claims still running from the store's index of servers alone, without reading a record.
"""

from __future__ import annotations

from kqueue.stores.base import BrokerRef

CLAIM_PREFIX = "claim:"
"""Server ids starting with this mark a record claimed by a sweeper that is re-enqueueing it."""


def is_claim(ref: BrokerRef | None) -> bool:
    """True for the placeholder reference a sweeper sets while it re-enqueues a record."""
    return ref is not None and ref.server_id.startswith(CLAIM_PREFIX)


def new_claim(token: str, lease_end: int) -> BrokerRef:
    """The claim of a pass with ``token`` whose lease ends at ``lease_end`` (Unix seconds)."""
    return BrokerRef(f"{CLAIM_PREFIX}{token}:{lease_end}", lease_end)


def claim_expired(ref: BrokerRef, now: float) -> bool:
    """True for a claim whose lease ended before ``now`` (its sweeper died mid-put)."""
    return ref.job_id < now


def claim_running(server: str, now: float) -> bool:
    """True for the server id of claims whose lease has not ended at ``now``. A claim without
    its lease in its name (set by an older kqueue) says nothing here: False, and a pass reads
    its records one by one."""
    if not server.startswith(CLAIM_PREFIX):
        return False
    _, _, lease_end = server[len(CLAIM_PREFIX) :].rpartition(":")
    return lease_end.isdigit() and int(lease_end) >= now
