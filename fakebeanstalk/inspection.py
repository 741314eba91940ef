"""Looking into a running fake server without a client: jobs, tubes and stats (thread-safe)."""

from __future__ import annotations

import threading
from typing import NamedTuple

from fakebeanstalk.model import Job
from fakebeanstalk.state import ServerState
from fakebeanstalk.stats import job_fields, server_fields, tube_fields

__all__ = ["InspectionMixin", "JobInfo"]


class JobInfo(NamedTuple):
    """A snapshot of one job, as ``stats-job`` and ``peek`` would show it."""

    id: int
    tube: str
    state: str
    pri: int
    body: bytes
    stats: dict[str, str]


def _info(state: ServerState, job: Job) -> JobInfo:
    stats = {key: str(value) for key, value in job_fields(state, job)}
    return JobInfo(job.id, job.tube.name, job.state, job.pri, job.body, stats)


class InspectionMixin:
    """Read-only views of the server's memory, taken under the server's lock."""

    _lock: threading.RLock
    _state: ServerState | None

    def jobs(self, tube: str | None = None, state: str | None = None) -> list[JobInfo]:
        """Every job by id, optionally only those of one tube and/or one state."""
        with self._lock:
            server = self._state
            if server is None:
                return []
            return [
                _info(server, job)
                for job in server.iter_jobs()
                if (tube is None or job.tube.name == tube) and (state is None or job.state == state)
            ]

    def job(self, job_id: int) -> JobInfo | None:
        """One job, or None when the server does not hold it."""
        with self._lock:
            server = self._state
            job = server.find_job(job_id) if server is not None else None
            return None if server is None or job is None else _info(server, job)

    def job_stats(self, job_id: int) -> dict[str, str] | None:
        """What ``stats-job`` would answer, as a dict, or None for an unknown job."""
        info = self.job(job_id)
        return None if info is None else dict(info.stats)

    def stats(self) -> dict[str, str]:
        """What ``stats`` would answer (without counting a ``stats`` command)."""
        with self._lock:
            server = self._state
            if server is None:
                return {}
            return {key: str(value) for key, value in server_fields(server)}

    def tube_stats(self, name: str) -> dict[str, str] | None:
        """What ``stats-tube`` would answer, or None for a tube that does not exist."""
        with self._lock:
            server = self._state
            tube = server.find_tube(name) if server is not None else None
            if server is None or tube is None:
                return None
            return {key: str(value) for key, value in tube_fields(server, tube)}

    def tubes(self) -> list[str]:
        """The names of the existing tubes, in ``list-tubes`` order."""
        with self._lock:
            server = self._state
            return [] if server is None else [tube.name for tube in server.tubes]
