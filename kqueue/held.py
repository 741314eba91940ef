"""Which records' jobs beanstalkd still holds: the check a recovery pass makes of the records
of a gone server (and, verifying, of the answering one), a page at a time.

A record's job is held when a peek of its job id finds a body naming the record's key. A
restarted beanstalkd gives ids from 1 again, so a peek may find another job under the id: one
of this queue's whose record is gone is an orphan, deleted; any other is left alone. The ids
the pass itself has put since are remembered (:class:`JobIdSet`), and a record of a gone
server under one of them is lost without a peek: a server gives each id once, so that job is
another record's (and a binlog restores jobs under ids it will not give again).
"""

from __future__ import annotations

from kqueue.beanstalk import commands as cmd
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline
from kqueue.beanstalk.wire import ReservedJob
from kqueue.claims import is_claim
from kqueue.serialization import decode_body
from kqueue.stores.base import JobRecord, Store

MAX_SPAN = 1 << 29
"""The most ids a :class:`JobIdSet` spans (64 MiB of bits): ids further from the first are not
kept (the pass then peeks, as without the set)."""


class JobIdSet:
    """A set of job ids, kept as bits from the first id added: a pass that puts a million jobs
    holds about 125 kB, not the ids themselves."""

    def __init__(self) -> None:
        self._first: int | None = None
        self._bits = bytearray()

    def add(self, job_id: int) -> None:
        """Remember ``job_id`` (ignored when below the first id or too far from it)."""
        if self._first is None:
            self._first = job_id
        offset = job_id - self._first
        if offset < 0 or offset >= MAX_SPAN:
            return
        byte = offset >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        self._bits[byte] |= 1 << (offset & 7)

    def __contains__(self, job_id: int) -> bool:
        if self._first is None:
            return False
        offset = job_id - self._first
        byte = offset >> 3
        return offset >= 0 and byte < len(self._bits) and bool(self._bits[byte] >> (offset & 7) & 1)


class HeldCheck:
    """Checks records against the server on ``conn``, for one recovery pass."""

    def __init__(self, conn: BeanstalkConnection, store: Store, *, tube_prefix: str) -> None:
        self.conn = conn
        self.store = store
        self.tube_prefix = tube_prefix
        self.put_ids = JobIdSet()
        """The ids the pass has put on this server (it adds them)."""

    def sort(
        self, records: list[JobRecord], answering: str
    ) -> tuple[list[JobRecord], list[JobRecord], int]:
        """(lost, held, orphans dropped) for records with a reference: one pipelined burst of
        peeks for those not known lost, one batch for the other jobs found under their ids."""
        lost: list[JobRecord] = []
        to_peek: list[JobRecord] = []
        for record in records:
            ref = record.ref
            taken = ref is not None and ref.server_id != answering and ref.job_id in self.put_ids
            (lost if taken else to_peek).append(record)
        if not to_peek:
            return lost, [], 0
        pipe = Pipeline(self.conn)
        peeks = [pipe.add(cmd.peek(record.ref.job_id)) for record in to_peek if record.ref]
        pipe.execute()
        held: list[JobRecord] = []
        others: list[ReservedJob] = []
        for record, pending in zip(to_peek, peeks, strict=True):
            found = pending.result()
            if is_its_job(record, found):
                held.append(record)
            else:
                lost.append(record)
                if found is not None:
                    others.append(found)
        return lost, held, self.drop_orphans(others)

    def holds(self, record: JobRecord) -> bool:
        """True if beanstalkd holds this record's job now (in any state)."""
        ref = record.ref
        if ref is None or is_claim(ref):
            return False
        found = self.conn.peek(ref.job_id)
        if is_its_job(record, found):
            return True
        self.drop_orphans([] if found is None else [found])
        return False

    def drop_orphans(self, jobs: list[ReservedJob]) -> int:
        """Delete those of ``jobs`` (each found under the id of a record it is not the job
        of) that are in one of this queue's tubes and whose record is gone: one store call,
        one pipelined burst of stats-job and one of deletes, however many there are. Another
        application's job (another prefix, another store) is never touched. How many went."""
        keys: dict[int, str] = {}
        for job in jobs:
            body = decode_body(job.body)
            if body is not None and body.stored:
                keys[job.id] = body.key
        present = self.store.get_status_many(sorted(set(keys.values()))) if keys else {}
        orphans = [job_id for job_id, key in keys.items() if key not in present]
        if not orphans:
            return 0
        pipe = Pipeline(self.conn)
        stats = [pipe.add(cmd.stats_job(job_id)) for job_id in orphans]
        pipe.execute()
        ours = [
            job_id
            for job_id, pending in zip(orphans, stats, strict=True)
            if str((pending.result() or {}).get("tube", "")).startswith(self.tube_prefix)
        ]
        pipe = Pipeline(self.conn)
        deleted = [pipe.delete(job_id) for job_id in ours]
        pipe.execute()
        return sum(1 for pending in deleted if pending.result())


def is_its_job(record: JobRecord, found: ReservedJob | None) -> bool:
    """True if the job peeked under a record's job id is that record's (its body names it)."""
    if found is None:
        return False
    body = decode_body(found.body)
    return body is not None and body.key == record.key
