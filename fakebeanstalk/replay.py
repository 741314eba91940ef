"""Restarting with jobs kept, the way beanstalkd comes back from its binlog."""

from __future__ import annotations

from fakebeanstalk.clock import Clock
from fakebeanstalk.model import Job, JobState
from fakebeanstalk.state import ServerState

__all__ = ["restarted_state"]


def restarted_state(old: ServerState, clock: Clock) -> ServerState:
    """A fresh server state holding ``old``'s jobs, as after a binlog replay.

    Reserved jobs come back ready, delayed ones keep their deadline (ready if it passed),
    buried ones stay buried (a replayed bury counts once more, as in beanstalkd), and the
    next id follows the highest kept id. Counters, pauses, drain mode and empty tubes are
    not kept; the server gets a new random id.
    """
    new = ServerState(clock, max_job_size=old.max_job_size)
    now = clock.now_ns()
    for job in list(old.iter_jobs()):
        copy = _adopt(new, job)
        if job.state == JobState.BURIED:
            new.replay_bury(copy)
        elif job.state == JobState.DELAYED and job.deadline_at > now:
            new.replay_enqueue(copy, job.deadline_at - now)
        else:
            new.replay_enqueue(copy, 0)
        new.next_id = max(new.next_id, job.id + 1)
    return new


def _adopt(new: ServerState, job: Job) -> Job:
    tube = new.make_tube(job.tube.name)
    copy = Job(job.id, tube, job.pri, job.delay, job.ttr, job.created_at)
    copy.body = job.body
    copy.reserves, copy.timeouts = job.reserves, job.timeouts
    copy.releases, copy.buries, copy.kicks = job.releases, job.buries, job.kicks
    tube.refs += 1
    new.jobs[copy.id] = copy
    return copy
