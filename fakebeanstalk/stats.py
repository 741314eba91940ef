"""The fields of ``stats``, ``stats-tube`` and ``stats-job``, in beanstalkd 1.12's order."""

from __future__ import annotations

import os
import resource

from fakebeanstalk import protocol as p
from fakebeanstalk.clock import NS_PER_SECOND
from fakebeanstalk.state import Job, JobState, ServerState, Tube

__all__ = ["job_fields", "server_fields", "tube_fields"]

Fields = list[tuple[str, object]]

_SHOWN_OPS = (
    "put",
    "peek",
    "peek-ready",
    "peek-delayed",
    "peek-buried",
    "reserve",
    "reserve-with-timeout",
    "delete",
    "release",
    "use",
    "watch",
    "ignore",
    "bury",
    "kick",
    "touch",
    "stats",
    "stats-job",
    "stats-tube",
    "list-tubes",
    "list-tube-used",
    "list-tubes-watched",
    "pause-tube",
)


def _seconds(ns: int) -> int:
    """C's int64 division by 1e9: truncates toward zero."""
    return ns // NS_PER_SECOND if ns >= 0 else -(-ns // NS_PER_SECOND)


def _rusage() -> tuple[str, str]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    micros = [round(t * 1_000_000) for t in (usage.ru_utime, usage.ru_stime)]
    utime, stime = (f"{us // 1_000_000}.{us % 1_000_000:06d}" for us in micros)
    return utime, stime


def server_fields(state: ServerState) -> Fields:
    """The body of ``stats``."""
    uname = os.uname()
    utime, stime = _rusage()
    delayed = sum(tube.delayed.live for tube in state.tubes)
    fields: Fields = [
        ("current-jobs-urgent", state.urgent),
        ("current-jobs-ready", state.ready_count),
        ("current-jobs-reserved", state.reserved),
        ("current-jobs-delayed", delayed),
        ("current-jobs-buried", state.buried),
    ]
    fields += [(f"cmd-{op}", state.ops[op]) for op in _SHOWN_OPS]
    fields += [
        ("job-timeouts", state.timeouts),
        ("total-jobs", state.total_jobs),
        ("max-job-size", state.max_job_size),
        ("current-tubes", len(state.tubes)),
        ("current-connections", state.connections),
        ("current-producers", state.producers),
        ("current-workers", state.workers),
        ("current-waiting", state.waiting),
        ("total-connections", state.total_connections),
        ("pid", os.getpid()),
        ("version", f'"{p.VERSION}"'),
        ("rusage-utime", utime),
        ("rusage-stime", stime),
        ("uptime", _seconds(state.clock.now_ns() - state.started_at)),
        *state.wal.stats_fields(),
        ("draining", "true" if state.draining else "false"),
        ("id", state.instance_id),
        ("hostname", uname.nodename),
        ("os", uname.version),
        ("platform", uname.machine),
    ]
    return fields


def tube_fields(state: ServerState, tube: Tube) -> Fields:
    """The body of ``stats-tube``."""
    left = _seconds(tube.unpause_at - state.clock.now_ns()) if tube.pause > 0 else 0
    return [
        ("name", tube.name),
        ("current-jobs-urgent", tube.urgent),
        ("current-jobs-ready", tube.ready.live),
        ("current-jobs-reserved", tube.reserved),
        ("current-jobs-delayed", tube.delayed.live),
        ("current-jobs-buried", len(tube.buried)),
        ("total-jobs", tube.total_jobs),
        ("current-using", tube.using),
        ("current-watching", tube.watching),
        ("current-waiting", len(tube.waiting.items)),
        ("cmd-delete", tube.deletes),
        ("cmd-pause-tube", tube.pause_count),
        ("pause", _seconds(tube.pause)),
        ("pause-time-left", left),
    ]


def job_fields(state: ServerState, job: Job) -> Fields:
    """The body of ``stats-job``."""
    now = state.clock.now_ns()
    timed = job.state in (JobState.RESERVED, JobState.DELAYED)
    return [
        ("id", job.id),
        ("tube", job.tube.name),
        ("state", job.state),
        ("pri", job.pri),
        ("age", _seconds(now - job.created_at)),
        ("delay", _seconds(job.delay)),
        ("ttr", _seconds(job.ttr)),
        ("time-left", _seconds(job.deadline_at - now) if timed else 0),
        ("file", job.wal_file.seq if job.wal_file is not None and state.wal.shown else 0),
        ("reserves", job.reserves),
        ("timeouts", job.timeouts),
        ("releases", job.releases),
        ("buries", job.buries),
        ("kicks", job.kicks),
    ]
