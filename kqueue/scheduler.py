"""The scheduler: adds the job of each tick of a queue's periodic schedules.

Run it as ``kqueue scheduler myapp.jobs:queue``, inside workers (``kqueue worker --scheduler``)
or in Python (``with Scheduler(queue): ...``). Any number may run at once: the job of a tick
claims the unique key ``periodic:<name>:<tick>`` for as long as that tick is the schedule's
latest (until its next tick, plus the grace), so the store adds it once and every other
scheduler finds it there.

A tick is on time while less than ``grace`` seconds old; older ones passed while no scheduler
ran (or it was paused). A schedule's ``missed`` policy decides: ``skip`` them, or ``run_once``
(the latest of them, once, unless an on-time tick runs anyway). A scheduler that starts looks
back at the latest tick only, so a restart never replays a backlog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import NamedTuple

from kqueue.errors import KQueueError
from kqueue.queue import KQueue
from kqueue.schedule import Schedule

logger = logging.getLogger("kqueue")

__all__ = ["Fired", "Scheduler"]

LONGEST_WAIT = 30.0
"""Seconds a scheduler sleeps at most between looks (schedules or the clock may change)."""


class Fired(NamedTuple):
    """One tick a scheduler added the job of (or found it added by another scheduler)."""

    schedule: str
    tick: float
    job_id: int


class Scheduler:
    """Adds the jobs of ``queue.periodic`` at their ticks; see the module docstring.

    ``clock`` gives the time (Unix seconds); tests pass their own and call
    :meth:`run_pending` with it, with no thread and no sleeping.
    """

    def __init__(
        self,
        queue: KQueue,
        *,
        grace: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.grace = grace
        self.clock = clock
        self._looked: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0
        """Ticks handled so far (added here or found added)."""

    def due(self, schedule: Schedule, now: float) -> list[float]:
        """The ticks of ``schedule`` to add a job for at ``now`` (and remember the look)."""
        looked = self._looked.get(schedule.name)
        self._looked[schedule.name] = now
        fresh = now - self.grace
        on_time = schedule.ticks_between(fresh if looked is None else max(looked, fresh), now)
        if on_time or schedule.missed == "skip":
            return on_time
        latest = schedule.latest_tick(fresh)
        if latest is None or (looked is not None and latest <= looked):
            return []
        return [latest]

    def run_pending(self, now: float | None = None) -> list[Fired]:
        """Add the job of every due tick of every schedule; what was handled."""
        now = self.clock() if now is None else now
        fired: list[Fired] = []
        for schedule in list(self.queue.periodic.values()):
            for tick in self.due(schedule, now):
                fired.append(Fired(schedule.name, tick, self._add(schedule, tick, now)))
        self.fired += len(fired)
        return fired

    def _add(self, schedule: Schedule, tick: float, now: float) -> int:
        # Held while this tick is the latest: a scheduler starting later (run_once) finds it.
        hold = schedule.next_tick(tick) - now + self.grace + 60.0
        job_id = self.queue.add_job(
            schedule.job_type,
            schedule.payload,
            priority=schedule.priority,
            ttr=schedule.ttr,
            unique_key=schedule.unique_key(tick),
            unique_for=max(hold, 1.0),
        )
        logger.info(
            "periodic %s: tick %s, job %s",
            schedule.name,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tick)),
            job_id,
            extra={"job_type": schedule.job_type, "job_id": job_id},
        )
        return job_id

    def next_look(self, now: float) -> float:
        """When the next tick of any schedule is due (at most LONGEST_WAIT after ``now``)."""
        ticks = [schedule.next_tick(now) for schedule in self.queue.periodic.values()]
        return min([now + LONGEST_WAIT, *ticks])

    def run(self) -> None:
        """Look at the schedules until :meth:`stop` (a failed add is logged, tried again at
        the next look while its tick is on time, or as the missed policy says)."""
        while not self._stop.is_set():
            try:
                self.run_pending()
            except KQueueError as exc:
                logger.error("scheduler: adding periodic jobs failed: %s", exc)
                self._looked.clear()  # look again from the latest ticks
            except Exception:  # the thread must outlive anything
                logger.exception("scheduler: adding periodic jobs failed")
                self._looked.clear()
            wait = self.next_look(self.clock()) - self.clock()
            self._stop.wait(min(max(wait, 0.05), LONGEST_WAIT))

    def start(self) -> Scheduler:
        """Run in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="kqueue-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (or :meth:`run`) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
