"""Chaos against beanstalkd in a container: killed with ``docker kill -s KILL``, and frozen.

The kill test is the process chaos test again, with the broker and Redis in containers: the
same promise (no job lost, duplicates bounded) must hold whatever runs the servers. The freeze
(``docker pause``) is what killing a process cannot show: a broker that accepts connections
but neither answers nor closes them, so only a timeout tells the client anything.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kqueue import NOT_SCHEDULED, Job, KQueue, KQueueError
from kqueue.stores.redis import RedisStore
from tests.chaos.test_broker_kills import JOBS, Cluster, run_chaos
from tests.docker.containers import ContainerBeanstalkd

pytestmark = [pytest.mark.chaos, pytest.mark.docker]

COMMAND_TIMEOUT = 1.0
CONNECT_TIMEOUT = 0.5
# add_job may connect once and wait for one reply; beyond both timeouts (plus scheduling noise
# on a loaded two-core machine) it has hung.
ADD_JOB_BOUND = CONNECT_TIMEOUT + COMMAND_TIMEOUT + 1.5


@pytest.fixture
def container_cluster(
    docker_beanstalkd: ContainerBeanstalkd, docker_redis: str
) -> Iterator[Cluster]:
    """The chaos Cluster (host worker processes) around the beanstalkd and Redis containers."""
    cluster = Cluster(docker_beanstalkd, docker_redis, f"kqchaos:{uuid.uuid4().hex[:8]}:")
    yield cluster
    cluster.stop()


def test_beanstalkd_container_killed_twice_loses_no_job(container_cluster: Cluster) -> None:
    done, sweeper, recovery = run_chaos(container_cluster, keep_binlog=False)
    lost = set(map(str, range(JOBS))) - set(done)
    duplicates = len(done) - len(set(done))
    print(
        f"\ncontainer, no binlog: {JOBS} jobs, 2 docker kills, lost {len(lost)}, "
        f"duplicates {duplicates}, recovered {sweeper.totals['requeued']}, "
        f"all done {recovery:.2f} s after the last restart"
    )
    assert lost == set()
    assert sweeper.totals["requeued"] > 0  # the kills did lose jobs from the broker
    assert duplicates <= 2 * 2  # at most one handler per worker per kill was running


@dataclass
class Outcome:
    """What one add_job did while the broker was frozen."""

    payload: int
    seconds: float
    job_id: int | None = None
    error: KQueueError | None = None


@dataclass
class FrozenProducer:
    """Adds jobs in a thread, so that a hang fails the test instead of blocking it."""

    queue: KQueue
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, payloads: range) -> None:
        def run() -> None:
            for payload in payloads:
                started = time.monotonic()
                outcome = Outcome(payload, 0.0)
                try:
                    outcome.job_id = self.queue.add_job("frozen", payload)
                except KQueueError as exc:
                    outcome.error = exc
                outcome.seconds = time.monotonic() - started
                self.outcomes.append(outcome)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(len(payloads) * ADD_JOB_BOUND)
        assert not thread.is_alive(), f"add_job hung on a frozen broker: {self.outcomes}"


def run_until(queue: KQueue, wanted: set[int], timeout: float) -> list[int]:
    """Run ``frozen`` jobs until every wanted payload ran (or ``timeout`` s); all payloads run."""
    ran: list[int] = []

    def handle(job: Job) -> None:
        ran.append(job.data)

    queue.add_handler("frozen", handle)
    deadline = time.monotonic() + timeout
    while not wanted <= set(ran) and time.monotonic() < deadline:
        queue.run_jobs(time_limit_ms=200)
    return ran


def test_frozen_broker_neither_hangs_the_producer_nor_loses_an_accepted_job(
    docker_beanstalkd: ContainerBeanstalkd, docker_redis: str
) -> None:
    store = RedisStore(docker_redis, prefix=f"kqfrozen:{uuid.uuid4().hex[:8]}:")
    queue = KQueue(
        host=docker_beanstalkd.host,
        port=docker_beanstalkd.port,
        bulk_store=store,
        connect_timeout=CONNECT_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
    )
    try:
        assert all(queue.add_job("frozen", payload) for payload in range(10))
        docker_beanstalkd.pause()
        producer = FrozenProducer(queue)
        producer.add(range(10, 13))
        docker_beanstalkd.unpause()
        print(f"\nadd_job on a frozen broker: {producer.outcomes}")
        for outcome in producer.outcomes:
            assert outcome.seconds < ADD_JOB_BOUND, f"add_job took too long: {outcome}"
            # Either a typed error, or accepted (stored) and reported as not scheduled.
            assert outcome.error is not None or outcome.job_id == NOT_SCHEDULED, outcome
        accepted = set(range(10)) | {o.payload for o in producer.outcomes if o.error is None}
        # What the frozen broker read meanwhile is served at the thaw; the sweep puts again
        # whatever it still lacks (grace 0: no producer is still putting).
        queue.sweep(grace=0)
        ran = run_until(queue, accepted, timeout=30)
        assert accepted <= set(ran), f"accepted jobs lost: {sorted(accepted - set(ran))}"
        # Only a put the broker read while frozen but never answered can run twice.
        assert len(ran) - len(set(ran)) <= len(producer.outcomes)
    finally:
        docker_beanstalkd.unpause()
        queue.close()
        store.close()


def test_worker_on_frozen_broker_returns_in_time_and_resumes_after_the_thaw(
    docker_beanstalkd: ContainerBeanstalkd,
) -> None:
    queue = KQueue(
        host=docker_beanstalkd.host,
        port=docker_beanstalkd.port,
        connect_timeout=CONNECT_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
    )
    try:
        queue.add_jobs("frozen", range(5))
        docker_beanstalkd.pause()
        returned: list[int] = []
        worker = threading.Thread(
            target=lambda: returned.append(queue.run_jobs(time_limit_ms=1000)), daemon=True
        )
        started = time.monotonic()
        worker.start()
        # The reserve is never answered: the worker must give up at its own time limit (plus
        # one command timeout), not wait for the broker.
        worker.join(1.0 + COMMAND_TIMEOUT + 3.0)
        assert not worker.is_alive(), "run_jobs hung on a frozen broker"
        print(
            f"\nrun_jobs(time_limit_ms=1000) on a frozen broker: {time.monotonic() - started:.2f} s"
        )
        docker_beanstalkd.unpause()
        ran = run_until(queue, set(range(5)), timeout=20)
        assert sorted(ran) == list(range(5)), "each job runs once after the thaw"
    finally:
        docker_beanstalkd.unpause()
        queue.close()
