"""Rates of added, done and failed jobs over the last hour, from sampling beanstalkd's counters.

beanstalkd counts for ever: per tube the jobs put (``total-jobs``) and deleted
(``cmd-delete``), per server the releases, burials and TTR timeouts. A :class:`Sampler` reads
them every few seconds in a thread of its own; the differences between samples are the rates.
A counter that goes back (beanstalkd restarted, or dropped an empty tube nobody watched) counts
as a fresh start, never as a negative rate. "failed" is server-wide: beanstalkd does not count
releases per tube.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kqueue.errors import KQueueError
from kqueue.queue import KQueue

__all__ = [
    "METRICS",
    "WINDOW",
    "RateHistory",
    "RatesView",
    "Sample",
    "Sampler",
    "chart_points",
    "rates_view",
    "take_sample",
]

WINDOW = 3600.0
"""Seconds of history kept and drawn."""

METRICS = ("added", "done", "failed")


@dataclass(frozen=True)
class Sample:
    """beanstalkd's running totals at one moment (Unix seconds)."""

    at: float
    added: int
    done: int
    failed: int


def take_sample(queue: KQueue, now: float) -> Sample:
    """The totals now: jobs put and deleted in this queue's tubes, and the server's
    releases, burials and TTR timeouts (its failed attempts)."""
    server: dict[str, Any] = dict(queue.admin.server_stats())
    added = done = 0
    for job_type in queue.admin.job_types():
        tube = queue.admin.tube_stats(job_type)
        added += tube.get("total-jobs", 0)
        done += tube.get("cmd-delete", 0)
    failed = sum(int(server.get(name, 0)) for name in ("cmd-release", "cmd-bury", "job-timeouts"))
    return Sample(now, added, done, failed)


class RateHistory:
    """The last hour of samples, and the rates between them."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> None:
        """Keep a sample; forget those older than the window (but one, to diff against)."""
        self.samples.append(sample)
        while len(self.samples) > 2 and self.samples[1].at <= sample.at - self.window:
            self.samples.popleft()

    def deltas(self, metric: str) -> list[tuple[float, float, int]]:
        """(time, seconds since the sample before, jobs counted) per step, oldest first."""
        found = []
        samples = list(self.samples)
        for before, after in itertools.pairwise(samples):
            seconds = after.at - before.at
            if seconds <= 0:
                continue
            was, now = getattr(before, metric), getattr(after, metric)
            found.append((after.at, seconds, now - was if now >= was else now))
        return found

    def steps(self, metric: str) -> list[tuple[float, float]]:
        """(time, jobs per minute) between consecutive samples, oldest first."""
        return [(at, counted * 60.0 / seconds) for at, seconds, counted in self.deltas(metric)]

    def total(self, metric: str) -> int:
        """Jobs counted over the kept history."""
        return sum(counted for _, _, counted in self.deltas(metric))


def chart_points(
    steps: list[tuple[float, float]], now: float, top: float, width: int, height: int
) -> str:
    """An SVG polyline's points for rates over the window ending ``now``, scaled to ``top``."""
    if not steps or top <= 0:
        return ""
    points = []
    for at, rate in steps:
        x = width * (1 - (now - at) / WINDOW)
        y = height * (1 - rate / top)
        points.append(f"{max(x, 0):.1f},{y:.1f}")
    return " ".join(points)


@dataclass(frozen=True)
class RatesView:
    """What the overview draws: per metric the jobs of the last hour and a polyline."""

    totals: dict[str, int]
    points: dict[str, str]
    top: float
    samples: int
    interval: float


def rates_view(history: RateHistory, now: float, interval: float) -> RatesView:
    """The chart of a history, 600 x 100 SVG units, scaled to its highest rate."""
    steps = {metric: history.steps(metric) for metric in METRICS}
    top = max([1.0, *(rate for found in steps.values() for _, rate in found)])
    points = {metric: chart_points(steps[metric], now, top, 600, 100) for metric in METRICS}
    totals = {metric: history.total(metric) for metric in METRICS}
    return RatesView(totals, points, top, len(history.samples), interval)


class Sampler:
    """Takes a sample every ``interval`` seconds in a daemon thread, into :attr:`history`.

    ``take`` is called with the time; an error (beanstalkd down) skips that sample.
    """

    def __init__(self, take: Callable[[float], Sample], interval: float = 10.0) -> None:
        self.take = take
        self.interval = interval
        self.history = RateHistory()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def sample_now(self) -> None:
        """Take one sample (skipped if beanstalkd or the store fails)."""
        try:
            sample = self.take(time.time())
        except KQueueError:
            return
        with self.lock:
            self.history.add(sample)

    def view(self) -> RatesView:
        """The chart of what was sampled so far."""
        with self.lock:
            return rates_view(self.history, time.time(), self.interval)

    def start(self) -> None:
        """Start sampling: a first sample before returning, then one every interval."""
        if self.interval <= 0 or self.thread is not None:
            return
        self.stopping.clear()
        self.sample_now()
        self.thread = threading.Thread(target=self._run, name="kqueue-dashboard-rates", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample_now()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(self.interval + 5)
            self.thread = None
