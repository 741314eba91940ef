"""The ack flusher: finished jobs deleted in batches while the next handler runs."""

from __future__ import annotations

import logging
import threading

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.beanstalk.pipeline import Pipeline, delete_jobs
from kqueue.errors import KQueueError
from kqueue.job import Job
from kqueue.stores.base import Store

logger = logging.getLogger("kqueue")

MAX_RERUN_DELAY = 60
"""Seconds, at most, before a finished job whose record could not be deleted runs again (the
delay doubles with each failure in a row: a store that can be read but not written must not
make finished jobs run again and again)."""


class AckFlusher:
    """Sends the deletes of finished jobs from a background thread while the next handler runs.

    :meth:`add` hands a finished job over; the thread takes everything handed over so far (so
    batches form while it is busy), deletes the records in one store call, then the jobs in
    one pipelined burst on the connection that reserved them, whose lock serialises the burst
    with the handler thread's own commands. A delete thus goes out within about one round trip
    of its handler returning, however long the next handler runs (it may outlast the finished
    job's TTR). :meth:`drain` waits until everything handed over is sent: the runner calls it
    before a window ends, so no delete ever waits behind a blocking reserve.

    Errors are logged, never raised: a lost connection releases the jobs, whose records are
    gone (they are dropped as stale when they come back); records the store failed to delete
    stay, and their jobs are released to run again. The daemon thread starts with the first
    job and stops on :meth:`close` (after sending what it holds); a later job starts it again.
    """

    def __init__(self, store: Store | None) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._pending: list[tuple[BeanstalkConnection, Job]] = []
        self._busy = 0
        self._thread: threading.Thread | None = None
        self.store_failures = 0
        """Deletes of finished records that failed in a row (0: the store takes deletes)."""

    def add(self, conn: BeanstalkConnection, job: Job) -> None:
        """Delete ``job`` (reserved on ``conn``) soon: its record first, then the job."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kqueue-acks", daemon=True)
                self._thread.start()
            self._pending.append((conn, job))
            if len(self._pending) == 1:  # else the thread was told already, and will look
                self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every job handed over has been deleted (or its delete has failed)."""
        with self._cond:
            while self._pending or self._busy:
                self._cond.wait()

    def close(self) -> None:
        """Send what is pending, then stop the thread."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._pending and self._thread is me:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
                self._busy += 1
            try:
                self._send(batch)
            except Exception:  # the thread must outlive anything
                logger.exception("deleting %d finished job(s) failed", len(batch))
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _send(self, batch: list[tuple[BeanstalkConnection, Job]]) -> None:
        keys = [job.key for _, job in batch if job.stored]
        kept = False
        if keys and self.store is not None:
            try:
                self.store.delete_many(keys)
                self.store_failures = 0
            except KQueueError as exc:
                kept = True
                self.store_failures += 1
                logger.error("cannot delete %d finished job record(s): %s", len(keys), exc)
        by_conn: dict[BeanstalkConnection, list[Job]] = {}
        for conn, job in batch:
            by_conn.setdefault(conn, []).append(job)
        for conn, jobs in by_conn.items():
            try:
                if kept:  # records still there: their jobs run again, after a growing delay
                    pipe = Pipeline(conn)
                    delay = min(MAX_RERUN_DELAY, 2 ** (self.store_failures - 1))
                    for job in jobs:
                        if job.stored:
                            pipe.release(job.id, priority=job.priority, delay=delay)
                        else:
                            pipe.delete(job.id)
                    pipe.execute()
                else:
                    delete_jobs(conn, [job.id for job in jobs])
            except KQueueError as exc:
                logger.warning("deletes of finished jobs on %s failed: %s", conn.address, exc)
