"""AutoTouch: a job is touched every half TTR while its handler runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from kqueue.errors import KQueueError
from kqueue.job import Job
from kqueue.middleware.base import Middleware

logger = logging.getLogger("kqueue")


class _Toucher:
    """Touches one reserved job every half TTR from a thread, until stopped."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"kqueue-touch-{job.id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        interval = max(0.2, self._job.ttr / 2)
        while not self._done.wait(interval):
            try:
                if not self._job.touch():
                    return
            except KQueueError as exc:
                logger.warning("job %s: automatic touch failed: %s", self._job.id, exc)
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class AutoTouch(Middleware):
    """Touches the jobs of ``job_types`` (None: every type) every half TTR while they run,
    for handlers that may outlast their TTR. ``add_handler(..., auto_touch=True)`` adds a
    type to the queue's own AutoTouch."""

    def __init__(self, job_types: Iterable[str] | None = None) -> None:
        self.job_types = None if job_types is None else set(job_types)
        self._running: dict[int, _Toucher] = {}
        self._lock = threading.Lock()

    def before_job(self, job: Job) -> None:
        if self.job_types is None or job.job_type in self.job_types:
            with self._lock:
                self._running[id(job)] = _Toucher(job)

    def after_handler(self, job: Job, error: BaseException | None) -> None:
        with self._lock:
            toucher = self._running.pop(id(job), None)
        if toucher is not None:
            toucher.stop()
