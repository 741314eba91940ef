"""Starting a server from its binlog, as beanstalkd 1.12 does (walinit, then prot_replay).

The binlog is read into a fresh :class:`~fakebeanstalk.state.ServerState` (see
:mod:`fakebeanstalk.binlog.reader`), then each surviving job is put back in the order it
was first journaled: a buried job at the end of its tube's buried list (its ``buries``
counted once more), a delayed job with its deadline kept (ready if it passed while the
server was down), any other job ready. A space reservation is made for each, as for the
delete that will one day follow. Counters, pauses, drain mode and tubes without jobs are
not in the binlog, so they start afresh; the server gets a new random ``id``.
"""

from __future__ import annotations

from fakebeanstalk.binlog.reader import read_binlog
from fakebeanstalk.binlog.records import JobRecord, RecordState
from fakebeanstalk.binlog.storage import Storage
from fakebeanstalk.binlog.wal import Wal
from fakebeanstalk.clock import Clock, wall_offset
from fakebeanstalk.errors import BinlogError
from fakebeanstalk.model import Job, JobState
from fakebeanstalk.state import ServerState

__all__ = ["restore", "start_state"]


def start_state(
    clock: Clock,
    storage: Storage,
    *,
    keep_jobs: bool,
    max_job_size: int,
    binlog_size: int,
    fsync_ms: int | None,
    shown: bool,
) -> ServerState:
    """A fresh server state journaling to ``storage`` and holding what it holds (nothing,
    after emptying it, unless ``keep_jobs``). ``shown``: a ``-b`` binlog, seen in stats."""
    storage.lock()
    if not keep_jobs:
        for seq in storage.sequence_numbers():
            storage.remove(seq)
    wal = Wal(
        storage,
        wall_offset=wall_offset(clock),
        file_size=binlog_size,
        # an int64 product in beanstalkd: it wraps, as ``-f`` values near 2^63 show
        fsync_ns=None
        if fsync_ms is None or not shown  # memory files have nothing to sync
        else (fsync_ms * 1_000_000 + 2**63) % 2**64 - 2**63,
        shown=shown,
    )
    state = ServerState(clock, max_job_size=max_job_size, wal=wal)
    try:
        restore(state, wal)
    except BaseException:
        wal.close()
        raise
    return state


def restore(state: ServerState, wal: Wal) -> None:
    """Fill the fresh ``state`` from ``wal``'s files and make ``wal`` its binlog."""
    state.wal = wal
    for job, record in read_binlog(wal, _Restorer(state)):
        if not wal.reserve_update(None):
            raise BinlogError("failed to replay log: no space for the job's delete")
        if record.state == RecordState.BURIED:
            state.replay_bury(job)
            continue
        delay = 0
        if record.state == RecordState.DELAYED:
            delay = max(0, job.deadline_at - state.clock.now_ns())
        state.replay_enqueue(job, delay)


class _Restorer:
    """The reader's view of the state: jobs being read back, not yet in any queue."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.max_job_size = state.max_job_size

    def find_job_record(self, job_id: int) -> Job | None:
        return self.state.jobs.get(job_id)

    def restore_job(self, record: JobRecord, tube: str) -> Job:
        state = self.state
        home = state.make_tube(tube)
        home.refs += 1
        job = Job(record.id, home, record.pri, record.delay, record.ttr, 0)
        state.jobs[job.id] = job
        state.next_id = max(state.next_id, job.id + 1)
        return job

    def apply_record(self, job: Job, record: JobRecord) -> None:
        offset = self.state.wal.wall_offset
        job.pri, job.delay, job.ttr = record.pri, record.delay, record.ttr
        job.created_at = record.created_at - offset
        job.deadline_at = record.deadline_at - offset
        job.reserves, job.timeouts = record.reserves, record.timeouts
        job.releases, job.buries, job.kicks = record.releases, record.buries, record.kicks
        job.state = JobState.INVALID  # in no queue until replayed

    def forget_job(self, job: Job) -> None:
        self.state.forget(job)
