"""Prometheus metrics for a queue (``pip install kqueue[metrics]``).

``serve_metrics(queue, port)`` serves, on ``http://127.0.0.1:port/metrics`` (``addr`` to
choose another interface):

- ``kqueue_jobs_total{event=...}``: jobs added, completed, failed, retried, buried,
  recovered, duplicate (dropped duplicate deliveries) and stale (references of finished jobs);
- ``kqueue_handler_seconds{job_type=...}``: a histogram of handler durations;
- ``kqueue_queue_depth{job_type=..., state=...}``: ready / delayed / reserved / buried jobs
  per job type, read from beanstalkd at scrape time.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.errors import ConfigurationError, KQueueError
from kqueue.job import Job
from kqueue.middleware.base import Middleware

logger = logging.getLogger("kqueue")

_EVENTS = {
    "added": "added",
    "completed": "completed",
    "failed": "failed",
    "retried": "retried",
    "buried": "buried",
    "recovered": "recovered",
    "duplicate": "duplicates_dropped",
    "stale": "stale_dropped",
}
_STATES = ("ready", "delayed", "reserved", "buried")


class MeasuredQueue(Protocol):
    """What the metrics need of a queue (a :class:`~kqueue.KQueue` has it)."""

    @property
    def counters(self) -> Counter[str]: ...

    @property
    def tube_prefix(self) -> str: ...

    def add_middleware(self, middleware: Middleware) -> None: ...

    def new_connection(self) -> BeanstalkConnection: ...


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigurationError(
            "metrics need prometheus_client: pip install kqueue[metrics]"
        ) from exc
    return prometheus_client


class QueueCollector:
    """Reads a queue's counters and beanstalkd's depths whenever Prometheus scrapes."""

    def __init__(
        self, counters: Counter[str], tube_prefix: str, connect: Callable[[], BeanstalkConnection]
    ) -> None:
        self.counters = counters
        self.tube_prefix = tube_prefix
        self._conn = connect()

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (prometheus_client's collector interface)."""
        from prometheus_client import core

        jobs = core.CounterMetricFamily("kqueue_jobs", "Jobs by event", labels=["event"])
        for event, counter in _EVENTS.items():
            jobs.add_metric([event], self.counters.get(counter, 0))
        yield jobs
        depth = core.GaugeMetricFamily(
            "kqueue_queue_depth", "Jobs in beanstalkd", labels=["job_type", "state"]
        )
        prefix = self.tube_prefix
        try:
            for tube in self._conn.list_tubes():
                if not tube.startswith(prefix) or tube == prefix:
                    continue
                stats = self._conn.stats_tube(tube) or {}
                counts = (
                    stats.get("current-jobs-ready", 0),
                    stats.get("current-jobs-delayed", 0),
                    stats.get("current-jobs-reserved", 0),
                    stats.get("current-jobs-buried", 0),
                )
                for state, value in zip(_STATES, counts, strict=True):
                    depth.add_metric([tube[len(prefix) :], state], float(value))
        except KQueueError as exc:
            logger.warning("metrics: cannot read queue depth: %s", exc)
        yield depth


class PrometheusMetrics(Middleware):
    """Observes handler durations into a Prometheus histogram."""

    def __init__(self, registry: Any) -> None:
        self.histogram = _prometheus().Histogram(
            "kqueue_handler_seconds",
            "Handler run time",
            ["job_type"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
        )

    def after_job(self, job: Job, seconds: float) -> None:
        self.histogram.labels(job.job_type).observe(seconds)

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        self.histogram.labels(job.job_type).observe(seconds)


def serve_metrics(queue: MeasuredQueue, port: int, *, addr: str = "127.0.0.1") -> Any:
    """Serve the queue's metrics over HTTP on a background thread; returns the registry."""
    prometheus = _prometheus()
    registry = prometheus.CollectorRegistry()
    registry.register(QueueCollector(queue.counters, queue.tube_prefix, queue.new_connection))
    queue.add_middleware(PrometheusMetrics(registry))
    prometheus.start_http_server(port, addr=addr, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", addr, port)
    return registry
