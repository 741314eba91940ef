"""The long-running worker: runs a queue's handlers until told to stop, and stops gracefully.

Signals (installed only in the main thread):

- the first SIGTERM or SIGINT stops reserving new jobs and lets the running handler finish,
  for up to ``grace_period`` seconds; the worker then exits with :data:`EXIT_OK`;
- a second signal (or the end of the grace period) stops at once: the running handler is
  interrupted and the connection closed, which makes beanstalkd release the reserved job
  immediately, so another worker runs it. Exit code :data:`EXIT_FORCED`.

Nothing is lost either way: a job is deleted only after its handler returned.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from types import FrameType
from typing import Any

from kqueue.queue import KQueue
from kqueue.sweeper import RecoverySweeper

logger = logging.getLogger("kqueue")

EXIT_OK = 0
EXIT_FORCED = 3


class _ForcedShutdown(BaseException):
    """Raised in the worker's thread to stop a handler at once (second signal)."""


class Worker:
    """Runs ``queue.run_jobs`` in the calling thread with graceful shutdown.

    ``job_types`` limits the worker to some of the queue's handlers; ``burst`` exits once no
    job is ready; ``sweep_interval`` also runs a :class:`~kqueue.sweeper.RecoverySweeper`.
    """

    def __init__(
        self,
        queue: KQueue,
        *,
        job_types: Sequence[str] | None = None,
        burst: bool = False,
        grace_period: float = 30.0,
        sweep_interval: float | None = None,
    ) -> None:
        self.queue = queue
        self.burst = burst
        self.grace_period = grace_period
        self.sweep_interval = sweep_interval
        self.jobs_run = 0
        self._signals = 0
        self._stopping = threading.Event()
        self._grace_timer: threading.Timer | None = None
        self._main_ident = threading.main_thread().ident or 0
        self.job_types = queue.consumer.check_worker(job_types, sweep_interval=sweep_interval)

    def run(self) -> int:
        """Run until stopped (or, in burst mode, until nothing is ready); the exit code."""
        in_main = threading.current_thread() is threading.main_thread()
        previous = self._install_signals() if in_main else {}
        sweeper = None
        if self.sweep_interval is not None:
            sweeper = RecoverySweeper(self.queue, interval=self.sweep_interval).start()
        handlers = ", ".join(sorted(self.job_types or self.queue.handlers))
        address = self.queue.config.address
        logger.info("worker started on %s for %s", address, handlers, extra={"server": address})
        started = time.monotonic()
        before = Counter(self.queue.counters)
        code = EXIT_OK
        try:
            self.jobs_run = self.queue.run_jobs(
                time_limit_ms=0 if self.burst else -1,
                job_types=self.job_types,
                stop_event=self._stopping,
            )
        except _ForcedShutdown:
            code = EXIT_FORCED
            logger.warning("worker stopped at once; the running job goes back to the queue")
        finally:
            if self._grace_timer is not None:
                self._grace_timer.cancel()
            if sweeper is not None:
                sweeper.stop()
            self.queue.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self._log_stopped(Counter(self.queue.counters) - before, time.monotonic() - started)
        return code

    def _log_stopped(self, counts: Counter[str], seconds: float) -> None:
        """One line: jobs finished (completed or buried), apart from attempts (handler runs,
        retries included), so 500 jobs that each ran twice read as 500 jobs."""
        finished = counts["completed"] + counts["buried"]
        logger.info(
            "worker stopped after %d job(s) (%d completed, %d buried; %d handler run(s), "
            "%d retried) in %.1f s",
            finished,
            counts["completed"],
            counts["buried"],
            self.jobs_run,
            counts["retried"],
            seconds,
            extra={"count": finished, "duration_ms": round(seconds * 1000)},
        )

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            raise _ForcedShutdown()
        logger.info(  # a deploy's SIGTERM is routine: a lifecycle step, not a problem
            "%s: finishing the running job (up to %.0f s); signal again to stop now",
            signal.Signals(signum).name,
            self.grace_period,
        )
        self._stopping.set()  # remembered if run_jobs has not started yet
        self.queue.stop()
        self._grace_timer = threading.Timer(self.grace_period, self._grace_over)
        self._grace_timer.daemon = True
        self._grace_timer.start()

    def _grace_over(self) -> None:
        logger.warning("grace period over")
        # A real signal to the main thread: it also interrupts a handler blocked in a syscall.
        signal.pthread_kill(self._main_ident, signal.SIGTERM)
