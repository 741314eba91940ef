"""Reading a binlog back at start-up, as beanstalkd 1.12's walinit() and readrec() do.

Files are read in sequence order, from the lowest number in the directory to the highest.
The first full record of an id creates the job (and its tube, and moves the next id past
it), later records replace all of its fields, and a delete record frees it. A reserved job
comes back ready. The jobs are then handed back in the order they were first seen, which
is the order the server replays them in (and so the order of a tube's buried list).

A damaged record stops the reading of its file (the files after it are still read), and
drops the job it belonged to, as beanstalkd does; the errors are reported on stderr.
"""

from __future__ import annotations

import logging
from typing import Protocol

from fakebeanstalk.binlog.records import (
    FULL_OVERHEAD,
    UPDATE_SIZE,
    Entry,
    JobRecord,
    ReadStop,
    RecordState,
    file_version,
    iter_entries,
)
from fakebeanstalk.binlog.wal import Wal, WalFile
from fakebeanstalk.errors import BinlogError
from fakebeanstalk.model import Job

__all__ = ["JobTable", "read_binlog"]

_log = logging.getLogger("fakebeanstalk")
"""Binlog trouble is reported here, as beanstalkd reports it on stderr."""

_LIVE = (RecordState.READY, RecordState.BURIED, RecordState.DELAYED)


class JobTable(Protocol):
    """Where the jobs read back are kept: the restarting server's state."""

    max_job_size: int

    def find_job_record(self, job_id: int) -> Job | None:
        """A job already created by this reading, or None."""
        ...

    def restore_job(self, record: JobRecord, tube: str) -> Job:
        """Create a job from its first full record (its state is settled later)."""
        ...

    def apply_record(self, job: Job, record: JobRecord) -> None:
        """Give ``job`` every field of ``record``."""
        ...

    def forget_job(self, job: Job) -> None:
        """Free a job read back and then deleted (or damaged)."""
        ...


def read_binlog(wal: Wal, table: JobTable) -> list[tuple[Job, JobRecord]]:
    """Read every file into ``table``, then open the next file for writing.

    Returns the surviving jobs with their last records, in replay order.
    """
    storage = wal.storage
    assert storage is not None
    numbers = storage.sequence_numbers()
    lowest = min(numbers, default=1 << 30)
    wal.next_seq = max([0, *numbers]) + 1
    order: dict[int, tuple[Job, JobRecord]] = {}
    failed = False
    for seq in range(lowest, wal.next_seq):
        data = storage.read(seq)
        if data is None:
            continue
        file = WalFile(seq)
        wal.files.append(file)
        failed |= _read_file(wal, file, data, table, order)
    if failed:
        _log.warning("Errors reading one or more WAL files.")
        _log.warning("Continuing. You may be missing data.")
    if not wal.new_file():
        raise BinlogError("cannot create the next binlog file")
    wal.cur = wal.files[-1]
    return list(order.values())


def _read_file(
    wal: Wal,
    file: WalFile,
    data: bytes,
    table: JobTable,
    order: dict[int, tuple[Job, JobRecord]],
) -> bool:
    """Read one file's records; True if an error stopped it."""
    version = file_version(data)
    if version is None:
        _log.warning(f"binlog.{file.seq}: unknown version")
        return True
    wal.incref(file)  # held while reading, so that the file is not dropped under us
    try:
        for item in iter_entries(data, version):
            if isinstance(item, ReadStop):
                if item.error is not None:
                    _log.warning(f"binlog.{file.seq}: {item.error}")
                return item.error is not None
            if not _apply(wal, file, item, table, order):
                return True
        return False
    finally:
        wal.decref(file)


def _drop(
    wal: Wal, job: Job | None, table: JobTable, order: dict[int, tuple[Job, JobRecord]]
) -> None:
    if job is not None:
        order.pop(job.id, None)
        wal.remove_job(job.wal_file, job)
        table.forget_job(job)


def _apply(
    wal: Wal,
    file: WalFile,
    entry: Entry,
    table: JobTable,
    order: dict[int, tuple[Job, JobRecord]],
) -> bool:
    """One record; False when it is damaged (which ends the file)."""
    record = entry.record
    job = table.find_job_record(record.id)
    if job is None and entry.tube is None:
        return True  # an update of a job whose full record went with a deleted file
    if record.state == RecordState.RESERVED:
        record = record._replace(state=RecordState.READY)
    if record.state == RecordState.INVALID:
        _drop(wal, job, table, order)
        return True
    if record.state not in _LIVE:
        _drop(wal, job, table, order)
        return False
    if job is None:
        assert entry.tube is not None
        # beanstalkd compares the stored size, CRLF included, with -z: a job of exactly
        # the maximum size is refused on the way back in.
        if record.body_size > table.max_job_size:
            return False
        job = table.restore_job(record, entry.tube)
    table.apply_record(job, record)
    order[job.id] = (job, record)  # a known id keeps its place: the order of first sight
    if entry.tube is None:
        size = UPDATE_SIZE
    else:
        body = entry.read_body() if entry.read_body is not None else None
        if body is None:
            _drop(wal, job, table, order)
            return False
        size = _take_body(wal, file, job, entry.tube, body)
    job.wal_used += size
    wal.alive += size
    return True


def _take_body(wal: Wal, file: WalFile, job: Job, tube: str, body: bytes) -> int:
    """A full record's body: the job's newest full record is now in ``file``; returns the
    record's size."""
    job.body = body[:-2] if len(body) >= 2 else b""
    wal.remove_job(job.wal_file, job)
    wal.add_job(file, job)
    return FULL_OVERHEAD + len(tube) + len(body)
