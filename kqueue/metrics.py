"""Prometheus metrics for a queue (``pip install kqueue[metrics]``).

``serve_metrics(queue, port)`` serves, on ``http://0.0.0.0:port/metrics``:

- ``kqueue_jobs_total{event=...}``: jobs added, completed, failed, retried, buried,
  recovered, duplicate (dropped duplicate deliveries) and stale (references of finished jobs);
- ``kqueue_handler_seconds{job_type=...}``: a histogram of handler durations;
- ``kqueue_queue_depth{job_type=..., state=...}``: ready / delayed / reserved / buried jobs
  per job type, read from beanstalkd at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from kqueue.broker import BeanstalkConnection
from kqueue.errors import ConfigurationError, KQueueError
from kqueue.hooks import Hooks
from kqueue.job import Job
from kqueue.queue import KQueue

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

    def __init__(self, queue: KQueue) -> None:
        self.queue = queue
        self._conn = BeanstalkConnection(queue.host, queue.port, command_timeout=2.0)

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (prometheus_client's collector interface)."""
        from prometheus_client import core

        jobs = core.CounterMetricFamily("kqueue_jobs", "Jobs by event", labels=["event"])
        for event, counter in _EVENTS.items():
            jobs.add_metric([event], self.queue.counters.get(counter, 0))
        yield jobs
        depth = core.GaugeMetricFamily(
            "kqueue_queue_depth", "Jobs in beanstalkd", labels=["job_type", "state"]
        )
        prefix = self.queue.tube_prefix
        try:
            for tube in self._conn.list_tubes():
                if not tube.startswith(prefix) or tube == prefix:
                    continue
                stats = self._conn.stats_tube(tube) or {}
                for state in _STATES:
                    value = stats.get(f"current-jobs-{state}", 0)
                    depth.add_metric([tube[len(prefix) :], state], float(value or 0))
        except KQueueError as exc:
            logger.warning("metrics: cannot read queue depth: %s", exc)
        yield depth


class MetricsHooks(Hooks):
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


def serve_metrics(queue: KQueue, port: int, *, addr: str = "0.0.0.0") -> Any:
    """Serve the queue's metrics over HTTP on a background thread; returns the registry."""
    prometheus = _prometheus()
    registry = prometheus.CollectorRegistry()
    registry.register(QueueCollector(queue))
    queue.hooks.add(MetricsHooks(registry))
    prometheus.start_http_server(port, addr=addr, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", addr, port)
    return registry
