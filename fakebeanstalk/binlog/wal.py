"""beanstalkd 1.12's write-ahead log: which file a record goes to, and when files go away.

The layout of the files on disk is a consequence of bookkeeping that this module keeps
exactly as beanstalkd does (walg.c, file.c), because ``stats`` shows its results
(``binlog-oldest-index``, ``binlog-current-index``, ``binlog-records-migrated``,
``binlog-records-written``) and because it decides which ids a restart sees again:

- Space is *reserved* before a job changes (a put reserves its full record plus the delete
  to come; bury, kick, release-with-delay reserve one short record) and the reservation,
  not the write, is what opens the next file when the current one is full.
- A file lives while it is open for writing or holds the newest full record of a live job.
  Files that hold neither are deleted, oldest first, but only from the head of the list.
- After each write, while the files are mostly dead weight (ratio >= 2), the oldest file's
  first job is *migrated*: written again in full to the current file.

The times written are wall-clock nanoseconds (``gettimeofday``), converted from the
server's clock with a fixed offset so that a FakeClock server keeps its deadlines too.
"""

from __future__ import annotations

import logging
import time

from fakebeanstalk.binlog.records import (
    FULL_OVERHEAD,
    HEADER,
    UPDATE_SIZE,
    JobRecord,
    RecordState,
    encode_full,
    encode_short,
)
from fakebeanstalk.binlog.storage import Storage
from fakebeanstalk.model import Job, JobState

__all__ = ["DEFAULT_FILE_SIZE", "DEFAULT_FSYNC_NS", "Wal", "WalFile", "c_int"]

_log = logging.getLogger("fakebeanstalk")
"""Binlog trouble is reported here, as beanstalkd reports it on stderr."""

DEFAULT_FILE_SIZE = 10 << 20
DEFAULT_FSYNC_NS = 50_000_000

_STATE_CODES = {
    JobState.INVALID: RecordState.INVALID,
    JobState.READY: RecordState.READY,
    JobState.RESERVED: RecordState.RESERVED,
    JobState.BURIED: RecordState.BURIED,
    JobState.DELAYED: RecordState.DELAYED,
}


def c_int(value: int) -> int:
    """``value`` stored in a C ``int`` (beanstalkd keeps the file size in one)."""
    return (value + 2**31) % 2**32 - 2**31


def _c_div(a: int, b: int) -> int:
    """C's integer division, truncating toward zero."""
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _c_mod(a: int, b: int) -> int:
    """C's ``%``, whose sign follows the dividend."""
    return a - b * _c_div(a, b)


class WalFile:
    """One ``binlog.N`` file and its share of the bookkeeping."""

    __slots__ = ("free", "jobs", "refs", "resv", "seq", "writing")

    def __init__(self, seq: int) -> None:
        """A file not yet opened."""
        self.seq = seq
        self.refs = 0
        self.free = 0
        self.resv = 0
        self.writing = False
        self.jobs: dict[int, Job] = {}
        """Live jobs whose newest full record is here, in the order it was written."""


class Wal:
    """The binlog of one server process; ``storage=None`` journals nothing (no ``-b``)."""

    def __init__(
        self,
        storage: Storage | None,
        *,
        wall_offset: int,
        file_size: int = DEFAULT_FILE_SIZE,
        fsync_ns: int | None = DEFAULT_FSYNC_NS,
        shown: bool = True,
    ) -> None:
        """``wall_offset`` turns the server's clock into wall-clock nanoseconds;
        ``fsync_ns`` is the least time between two fsyncs (None: never, ``-F``);
        ``shown=False`` keeps the ``binlog-*`` stats at what a server without ``-b`` shows."""
        self.storage = storage
        self.use = storage is not None
        self.wall_offset = wall_offset
        self.file_size = c_int(file_size)
        self.fsync_ns = fsync_ns
        self.shown = shown and self.use
        self.files: list[WalFile] = []
        self.cur: WalFile | None = None
        self.next_seq = 1
        self.resv = self.alive = self.migrated = self.written = 0
        self._last_sync = -(2**63)

    # -- stats --------------------------------------------------------------------------
    def stats_fields(self) -> list[tuple[str, int]]:
        """The ``binlog-*`` fields of ``stats``."""
        shown = self.shown
        return [
            ("binlog-oldest-index", self.files[0].seq if shown and self.files else 0),
            ("binlog-current-index", self.cur.seq if shown and self.cur is not None else 0),
            ("binlog-records-migrated", self.migrated if shown else 0),
            ("binlog-records-written", self.written if shown else 0),
            ("binlog-max-size", self.file_size),
        ]

    # -- file lifetime ------------------------------------------------------------------
    def incref(self, file: WalFile) -> None:
        """One more reason to keep ``file``."""
        file.refs += 1

    def decref(self, file: WalFile) -> None:
        """One reason less; unreferenced files at the head of the list are deleted."""
        file.refs -= 1
        if file.refs < 1:
            self._collect()

    def _collect(self) -> None:
        files = self.files
        while files and files[0].refs == 0:
            head = files.pop(0)
            if self.storage is not None:
                self.storage.remove(head.seq)

    def add_job(self, file: WalFile, job: Job) -> None:
        """``job``'s newest full record is now in ``file``."""
        job.wal_file = file
        file.jobs[job.id] = job
        self.incref(file)

    def remove_job(self, file: WalFile | None, job: Job) -> None:
        """``job`` no longer needs ``file`` (deleted, or written in full elsewhere)."""
        if file is None or job.wal_file is not file:
            return
        del file.jobs[job.id]
        job.wal_file = None
        self.alive -= job.wal_used
        job.wal_used = 0
        self.decref(file)

    def new_file(self) -> bool:
        """Open the next ``binlog.N`` for writing at the tail of the list."""
        assert self.storage is not None
        file = WalFile(self.next_seq)
        if not self.storage.create(file.seq, HEADER):
            _log.warning(f"cannot create binlog.{file.seq}")
            return False
        file.writing = True
        self.incref(file)
        file.free = self.file_size - len(HEADER)
        self.next_seq += 1
        self.files.append(file)
        return True

    def _close_file(self, file: WalFile) -> None:
        if not file.writing:
            return
        if self.storage is not None:
            self.storage.close_file(file.seq)
        file.writing = False
        self.decref(file)

    def _after(self, file: WalFile) -> WalFile | None:
        index = self.files.index(file) + 1
        return self.files[index] if index < len(self.files) else None

    def _use_next(self) -> bool:
        cur = self.cur
        assert cur is not None
        following = self._after(cur)
        if following is None:
            _log.warning("there is no next wal file")
            return False
        self.cur = following
        self._close_file(cur)
        return True

    def close(self) -> None:
        """Stop journaling, as the process's death does (files stay as they are)."""
        if self.storage is not None:
            self.storage.close()
        self.use = False

    # -- space reservations ---------------------------------------------------------------
    def reserve_put(self, job: Job) -> bool:
        """Reserve a put's full record and the delete that will follow it."""
        size = FULL_OVERHEAD + len(job.tube.name) + len(job.body) + 2 + UPDATE_SIZE
        job.wal_resv = self._reserve(size)
        return job.wal_resv != 0

    def reserve_update(self, job: Job | None) -> bool:
        """Reserve one short record (for ``job``, or for a job being replayed)."""
        reserved = self._reserve(UPDATE_SIZE)
        if job is not None:
            job.wal_resv += reserved
        return reserved != 0

    def _need_free(self, size: int) -> bool:
        return self.files[-1].free >= size or self.new_file()

    @staticmethod
    def _move_resv(to: WalFile, source: WalFile, size: int) -> None:
        source.resv -= size
        source.free += size
        to.resv += size
        to.free -= size

    def _reserve(self, size: int) -> int:
        """Reserve ``size`` bytes; returns ``size``, or 0 when no file could take them."""
        if not self.use:
            return 1  # "nonzero but otherwise ignored", as beanstalkd's reserve() says
        cur = self.cur
        assert cur is not None
        if cur.free >= size:
            cur.free -= size
            cur.resv += size
            self.resv += size
            return size
        if not self._need_free(size):
            return 0
        tail = self.files[-1]
        tail.free -= size
        tail.resv += size
        self.resv += size
        if not self._balance(size):
            self.resv -= size
            self.files[-1].resv -= size
            self.files[-1].free += size
            return 0
        return size

    def _balance(self, size: int) -> bool:
        """Make the current file hold at least ``size`` reserved bytes, and every file's
        reservation a whole number of short records beyond what its next write needs."""
        cur = self.cur
        assert cur is not None
        while cur.resv < size:
            moved = cur.resv
            if not self._need_free(moved):
                return False
            self._move_resv(self.files[-1], cur, moved)
            self._use_next()
            cur = self.cur
            assert cur is not None
        return self._balance_rest(cur, size)

    def _balance_rest(self, file: WalFile | None, size: int) -> bool:
        while file is not None:
            remainder = _c_mod(file.resv - size, UPDATE_SIZE)
            if remainder:
                missing = UPDATE_SIZE - remainder
                tail = self.files[-1]
                if tail.resv >= missing and file.free >= missing:
                    self._move_resv(file, tail, missing)
                elif self._need_free(remainder):
                    self._move_resv(self.files[-1], file, remainder)
                else:
                    return False
            file, size = self._after(file), 0
        return True

    # -- writing ------------------------------------------------------------------------
    def record_of(self, job: Job) -> JobRecord:
        """The job's persistent fields as a binlog record."""
        return JobRecord(*self._fields(job))

    def _fields(self, job: Job) -> tuple[int, ...]:
        # A plain tuple: this runs for every journaled command, a NamedTuple costs more.
        offset = self.wall_offset
        return (
            job.id,
            job.pri,
            job.delay,
            job.ttr,
            len(job.body) + 2,
            job.created_at + offset,
            job.deadline_at + offset,
            job.reserves,
            job.timeouts,
            job.releases,
            job.buries,
            job.kicks,
            _STATE_CODES[job.state],
        )

    def write(self, job: Job) -> bool:
        """Journal ``job`` as it is now: in full the first time, then as short records."""
        if not self.use:
            return True
        cur = self.cur
        assert cur is not None
        written = False
        if cur.resv > 0 or self._use_next():
            cur = self.cur
            assert cur is not None
            try:
                written = self._write_job(cur, job)
            except OSError as exc:
                _log.warning(f"binlog write: {exc}")
        if not written:
            self._close_file(cur)
            self.use = False
        self.written += 1
        return written

    def _write_job(self, file: WalFile, job: Job) -> bool:
        record = self._fields(job)
        if job.wal_file is None:
            self.add_job(file, job)
            data = encode_full(job.tube.name, record, job.body + b"\r\n")
        else:
            data = encode_short(record)
        assert self.storage is not None
        self.storage.append(file.seq, data)
        self.resv -= len(data)
        file.resv -= len(data)
        job.wal_resv -= len(data)
        job.wal_used += len(data)
        self.alive += len(data)
        if job.state == JobState.INVALID:
            self.remove_job(job.wal_file, job)
        return True

    # -- maintenance ----------------------------------------------------------------------
    def maintain(self) -> None:
        """After a write: migrate jobs out of old files if they are mostly dead, and fsync
        if the fsync interval has passed."""
        if not self.use:
            return
        for _ in range(self._waste_ratio(), 1, -1):
            # beanstalkd tries once per unit of the ratio; an attempt that changed nothing
            # would be repeated in vain (the ratio of a nearly empty 10 MB file is ~1e5).
            if not self._migrate_one():
                break
        if self.fsync_ns is not None and self.cur is not None and self.storage is not None:
            now = time.monotonic_ns()
            if now >= self._last_sync + self.fsync_ns:
                self._last_sync = now
                self.storage.sync(self.cur.seq)

    def _waste_ratio(self) -> int:
        live = self.alive + self.resv
        if not live:
            return 0
        return _c_div(len(self.files) * self.file_size - live, live)

    def _migrate_one(self) -> bool:
        """Move the oldest file's first job to the current file; False if nothing changed."""
        files = self.files
        if files[0] is self.cur or (len(files) > 1 and files[1] is self.cur):
            return False  # nothing to gain: the next file is the one being written
        job = next(iter(files[0].jobs.values()), None)
        if job is None:
            _log.warning("head holds no jlist")
            return False
        size = FULL_OVERHEAD + len(job.tube.name) + len(job.body) + 2
        if not self._reserve(size):
            return True  # a failed reservation may still have opened a file
        # The head is looked up again: the reservation may have closed and dropped files.
        self.remove_job(self.files[0], job)
        self.migrated += 1
        self.write(job)
        return True
