"""The long-running asyncio worker: one event loop, up to ``concurrency`` jobs in flight.

Signals, as for the sync :class:`~kqueue.worker.Worker`: the first SIGTERM or SIGINT stops
taking jobs and lets the jobs in flight finish, for up to ``grace_period`` seconds (exit
:data:`EXIT_OK`); a second signal, or the end of the grace period, cancels
them and closes their connections, so beanstalkd hands their jobs to another worker at once
(exit :data:`EXIT_FORCED`). A job is deleted only after its handler returned:
nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Sequence

from kqueue.aio.queue import AsyncKQueue
from kqueue.sweeper import RecoverySweeper

__all__ = ["EXIT_FORCED", "EXIT_OK", "AsyncWorker"]

logger = logging.getLogger("kqueue")

EXIT_OK = 0
EXIT_FORCED = 3
"""The sync worker's exit codes (:mod:`kqueue.worker` sits above this package: a test
checks that they agree)."""


class AsyncWorker:
    """Runs ``queue.run_jobs`` on an event loop of its own with graceful shutdown
    (``job_types``, ``burst`` and ``sweep_interval`` as for :class:`~kqueue.worker.Worker`)."""

    def __init__(
        self,
        queue: AsyncKQueue,
        *,
        concurrency: int = 1,
        job_types: Sequence[str] | None = None,
        burst: bool = False,
        grace_period: float = 30.0,
        sweep_interval: float | None = None,
    ) -> None:
        self.queue = queue
        self.concurrency = concurrency
        self.burst = burst
        self.grace_period = grace_period
        self.sweep_interval = sweep_interval
        self.jobs_run = 0
        self._signals = 0
        self._task: asyncio.Task[int] | None = None
        consumer = queue.queue.consumer
        self.job_types = consumer.check_worker(job_types, sweep_interval=sweep_interval)

    def run(self) -> int:
        """Run until stopped (or, in burst mode, until nothing is ready); the exit code."""
        return asyncio.run(self.serve())

    async def serve(self) -> int:
        """:meth:`run` on the running loop."""
        loop = asyncio.get_running_loop()
        in_main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if in_main else ()
        for signum in signals:
            loop.add_signal_handler(signum, self._on_signal, signum)
        sweeper = None
        if self.sweep_interval is not None:
            sweeper = RecoverySweeper(self.queue.queue, interval=self.sweep_interval).start()
        logger.info(
            "asyncio worker started on %s for %s, %d job(s) at once",
            self.queue.config.address,
            ", ".join(sorted(self.job_types or self.queue.handlers)),
            self.concurrency,
        )
        try:
            return await self._run_jobs()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            if sweeper is not None:
                await asyncio.to_thread(sweeper.stop)
            await self.queue.close()
            logger.info("asyncio worker stopped after %d handler run(s)", self.jobs_run)

    async def _run_jobs(self) -> int:
        self._task = asyncio.ensure_future(
            self.queue.run_jobs(
                time_limit_ms=0 if self.burst else -1,
                job_types=self.job_types,
                concurrency=self.concurrency,
            )
        )
        try:
            self.jobs_run = await self._task
        except asyncio.CancelledError:
            if self._signals == 0:
                raise  # cancelled from outside, not by a signal: let it through
            logger.warning("worker stopped at once; the jobs in flight go back to the queue")
            self.jobs_run = self.queue.consumer.ran
            return EXIT_FORCED
        return EXIT_OK

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            self._force()
            return
        logger.info(
            "%s: finishing the jobs in flight (up to %.0f s); signal again to stop now",
            signal.Signals(signum).name,
            self.grace_period,
        )
        self.queue.stop()
        asyncio.get_running_loop().call_later(self.grace_period, self._grace_over)

    def _grace_over(self) -> None:
        logger.warning("grace period over")
        self._signals += 1
        self._force()

    def _force(self) -> None:
        if self._task is not None:
            self._task.cancel()
