"""Restarting with jobs kept, the way beanstalkd comes back from its binlog."""

from __future__ import annotations

from fakebeanstalk.clock import Clock
from fakebeanstalk.model import Job, JobState, Journal
from fakebeanstalk.state import ServerState

__all__ = ["restarted_state"]


def restarted_state(old: ServerState, clock: Clock) -> ServerState:
    """A fresh server state holding ``old``'s jobs as its binlog last recorded them.

    beanstalkd journals put, bury, kick and release-with-delay only, so a job comes back in
    the state, priority and counters of its last such event: a reserved job comes back ready
    (or buried, or delayed, if reserve-job took it from there), a delayed one keeps its
    deadline (ready if it passed), a replayed bury counts once more. The next id follows the
    highest kept id. Counters, pauses, drain mode and empty tubes are not kept, and the server
    gets a new random id.
    """
    new = ServerState(clock, max_job_size=old.max_job_size)
    now = clock.now_ns()
    for job in list(old.iter_jobs()):
        record = job.journal
        if record is None:
            continue
        copy = _adopt(new, job, record)
        if record.state == JobState.BURIED:
            new.replay_bury(copy)
        elif record.state == JobState.DELAYED and record.deadline_at > now:
            new.replay_enqueue(copy, record.deadline_at - now)
        else:
            new.replay_enqueue(copy, 0)
        new.next_id = max(new.next_id, job.id + 1)
    return new


def _adopt(new: ServerState, job: Job, record: Journal) -> Job:
    tube = new.make_tube(job.tube.name)
    copy = Job(job.id, tube, record.pri, record.delay, job.ttr, job.created_at)
    copy.body = job.body
    copy.reserves, copy.timeouts = record.reserves, record.timeouts
    copy.releases, copy.buries, copy.kicks = record.releases, record.buries, record.kicks
    copy.journal = record
    tube.refs += 1
    new.jobs[copy.id] = copy
    return copy
