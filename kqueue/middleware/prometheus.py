"""Prometheus metrics for a queue (``pip install kqueue[metrics]``).

``serve_metrics(queue, port)`` serves, on ``http://127.0.0.1:port/metrics`` (``addr`` to
choose another interface). Several worker processes (``kqueue worker --processes N``) share
one endpoint: the children record through prometheus_client's multiprocess mode
(:func:`record_for_parent`) and the parent serves their sum (:func:`serve_children_metrics`).
The metrics:

- ``kqueue_jobs_total{event=...}``: jobs added, completed, failed, retried, buried,
  recovered, duplicate (dropped duplicate deliveries) and stale (references of finished jobs);
- ``kqueue_handler_seconds{job_type=...}``: a histogram of handler durations;
- ``kqueue_queue_depth{job_type=..., state=...}``: ready / delayed / reserved / buried jobs
  per job type, read from beanstalkd at scrape time.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.errors import ConfigurationError, KQueueError
from kqueue.job import Job
from kqueue.middleware.base import DropReason, Middleware
from kqueue.stores.base import JobRecord

logger = logging.getLogger("kqueue")

_EVENTS = ("added", "completed", "failed", "retried", "buried", "recovered", "duplicate", "stale")
_STATES = ("ready", "delayed", "reserved", "buried")
_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120)


class MeasuredQueue(Protocol):
    """What the metrics need of a queue (a :class:`~kqueue.KQueue` has it)."""

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
    """Reads beanstalkd's depths per job type whenever Prometheus scrapes."""

    def __init__(self, tube_prefix: str, connect: Callable[[], BeanstalkConnection]) -> None:
        self.tube_prefix = tube_prefix
        self._conn = connect()

    def collect(self) -> Iterator[Any]:
        """Yield the metric family (prometheus_client's collector interface)."""
        from prometheus_client import core

        depth = core.GaugeMetricFamily(
            "kqueue_queue_depth", "Jobs in beanstalkd", labels=["job_type", "state"]
        )
        prefix = self.tube_prefix
        try:
            for tube in self._conn.list_tubes():
                if tube.startswith(prefix) and tube != prefix:
                    self._add_tube(depth, tube, tube[len(prefix) :])
        except KQueueError as exc:
            logger.warning("metrics: cannot read queue depth: %s", exc)
        yield depth

    def _add_tube(self, depth: Any, tube: str, job_type: str) -> None:
        stats = self._conn.stats_tube(tube) or {}
        counts = (
            stats.get("current-jobs-ready", 0),
            stats.get("current-jobs-delayed", 0),
            stats.get("current-jobs-reserved", 0),
            stats.get("current-jobs-buried", 0),
        )
        for state, value in zip(_STATES, counts, strict=True):
            depth.add_metric([job_type, state], float(value))


class PrometheusMetrics(Middleware):
    """Counts jobs by event and observes handler durations, as Prometheus metrics.

    ``registry`` None registers nothing: in prometheus_client's multiprocess mode the values
    go to the shared directory, where the parent's collector reads them.
    """

    def __init__(self, registry: Any) -> None:
        prometheus = _prometheus()
        self.jobs = prometheus.Counter("kqueue_jobs", "Jobs by event", ["event"], registry=registry)
        self.histogram = prometheus.Histogram(
            "kqueue_handler_seconds",
            "Handler run time",
            ["job_type"],
            registry=registry,
            buckets=_BUCKETS,
        )
        for event in _EVENTS:
            self.jobs.labels(event)  # every series exists from the start, at 0

    def after_enqueue(self, job_type: str, count: int, unscheduled: int) -> None:
        self.jobs.labels("added").inc(count)

    def after_job(self, job: Job, seconds: float) -> None:
        self.jobs.labels("completed").inc()
        self.histogram.labels(job.job_type).observe(seconds)

    def on_failure(self, job: Job, error: BaseException, seconds: float) -> None:
        self.jobs.labels("failed").inc()
        self.histogram.labels(job.job_type).observe(seconds)

    def on_retried(self, job: Job, delay: int) -> None:
        self.jobs.labels("retried").inc()

    def on_buried(self, job: Job, reason: str) -> None:
        self.jobs.labels("buried").inc()

    def on_dropped(self, job_id: int, key: str | None, reason: DropReason) -> None:
        if reason in ("duplicate", "stale"):
            self.jobs.labels(reason).inc()

    def on_recovered(self, record: JobRecord, job_id: int) -> None:
        self.jobs.labels("recovered").inc()


def serve_metrics(queue: MeasuredQueue, port: int, *, addr: str = "127.0.0.1") -> Any:
    """Serve the queue's metrics over HTTP on a background thread; returns the registry."""
    prometheus = _prometheus()
    registry = prometheus.CollectorRegistry()
    registry.register(QueueCollector(queue.tube_prefix, queue.new_connection))
    queue.add_middleware(PrometheusMetrics(registry))
    prometheus.start_http_server(port, addr=addr, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", addr, port)
    return registry


def record_for_parent(queue: MeasuredQueue) -> None:
    """In a child of ``kqueue worker --processes``: record metrics for the parent to serve
    (prometheus_client's multiprocess mode; its directory comes in the environment)."""
    queue.add_middleware(PrometheusMetrics(registry=None))


def serve_children_metrics(
    queue: MeasuredQueue, port: int, *, directory: str, addr: str = "127.0.0.1"
) -> Any:
    """In the parent: serve the sum of what the children record in ``directory``, and the
    queue depths; returns the registry."""
    prometheus = _prometheus()
    multiprocess: Any = importlib.import_module("prometheus_client.multiprocess")
    registry = prometheus.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    registry.register(QueueCollector(queue.tube_prefix, queue.new_connection))
    prometheus.start_http_server(port, addr=addr, registry=registry)
    logger.info("metrics of every worker process on http://%s:%d/metrics", addr, port)
    return registry
