"""Unique jobs over every store, on the real beanstalkd and on fakebeanstalk: while a job holds
its unique key, another add returns that job and adds nothing."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from kqueue import NOT_SCHEDULED, Job, KQueue, UniqueFor, ValidationError
from kqueue.stores import Store
from tests.contract.conftest import open_test_store
from tests.servers import BeanstalkdProcess


def ready(queue: KQueue, job_type: str) -> int:
    stats = queue.stats().job_types.get(job_type) or {}
    return stats.get("current-jobs-ready", 0) + stats.get("current-jobs-delayed", 0)


def run_all(queue: KQueue, job_type: str, handler: Callable[[Job], Any] | None = None) -> list[Any]:
    seen: list[Any] = []

    def record(job: Job) -> None:
        seen.append(job.data)
        if handler is not None:
            handler(job)

    queue.add_handler(job_type, record)
    queue.run_jobs(time_limit_ms=0)
    return seen


def test_a_second_add_of_a_waiting_key_returns_the_first_job_and_adds_nothing(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queue = make_queue()
    first = queue.add_job("report", {"n": 1}, unique_key="report:42")
    assert first != NOT_SCHEDULED
    assert queue.add_job("report", {"n": 2}, unique_key="report:42") == first
    assert queue.add_job("report", {"n": 3}, unique_key="report:7") not in (first, 0)
    assert (ready(queue, "report"), store.count()) == (2, 2)
    assert sorted(run_all(queue, "report"), key=str) == [{"n": 1}, {"n": 3}]
    # finished: the key is free again
    assert queue.add_job("report", {"n": 4}, unique_key="report:42") not in (first, 0)


def test_a_key_held_until_start_is_free_while_the_job_runs(
    make_queue: Callable[..., KQueue],
) -> None:
    queue = make_queue()
    first = queue.add_job("sync", "a", unique_key="sync", unique_for=UniqueFor.START)
    assert queue.add_job("sync", "b", unique_key="sync", unique_for=UniqueFor.START) == first
    added_while_running: list[int] = []

    def add_again(job: Job) -> None:
        if job.data == "a":
            added_while_running.append(
                queue.add_job("sync", "c", unique_key="sync", unique_for=UniqueFor.START)
            )

    assert run_all(queue, "sync", add_again) == ["a", "c"]
    assert added_while_running[0] not in (first, NOT_SCHEDULED)


def test_a_key_held_for_a_time_outlives_its_finished_job(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queue = make_queue()
    queue.add_job("digest", "a", unique_key="digest", unique_for=timedelta(hours=1))
    assert run_all(queue, "digest") == ["a"]
    assert queue.add_job("digest", "b", unique_key="digest", unique_for=3600) == NOT_SCHEDULED
    assert (ready(queue, "digest"), store.count()) == (0, 0)


def test_recovery_keeps_the_key_and_purge_releases_it(
    make_queue: Callable[..., KQueue], beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    queue.add_job("import", "a", unique_key="import", unique_for=UniqueFor.START)
    beanstalkd.restart(binlog_dir=False)
    assert queue.sweep(grace=0).requeued == 1
    held = queue.add_job("import", "b", unique_key="import", unique_for=UniqueFor.START)
    assert held != NOT_SCHEDULED and ready(queue, "import") == 1
    assert queue.purge_jobs("import") == 1
    assert queue.add_job("import", "c", unique_key="import") != held
    assert run_all(queue, "import") == ["c"]


def test_add_jobs_adds_the_first_job_of_each_key(make_queue: Callable[..., KQueue]) -> None:
    queue = make_queue()
    queue.add_job("mail", {"to": "b"}, unique_key="to:b")
    payloads = [{"to": "a"}, {"to": "b"}, {"to": "a"}, {"to": "c"}]
    ids = queue.add_jobs("mail", payloads, unique_key=lambda p: f"to:{p['to']}")
    assert ids[0] == ids[2] and len(set(ids)) == 3 and NOT_SCHEDULED not in ids
    assert ready(queue, "mail") == 3
    assert queue.add_jobs("mail", ["x", "y"], unique_key=["k", None]) != []
    assert ready(queue, "mail") == 5


def test_bad_unique_arguments_raise_and_add_nothing(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queue = make_queue()
    for bad in ({"unique_key": ""}, {"unique_key": "k", "unique_for": 0}, {"unique_key": 5}):
        with pytest.raises(ValidationError):
            queue.add_job("t", 1, **bad)
    with pytest.raises(ValidationError):
        queue.add_jobs("t", [1, 2], unique_key=["only one"])
    assert store.count() == 0


def test_many_threads_adding_one_key_at_once_add_one_job(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queues = [make_queue() for _ in range(8)]
    barrier = threading.Barrier(len(queues))
    ids: list[int] = []

    def add(queue: KQueue) -> None:
        barrier.wait(timeout=20)
        ids.append(queue.add_job("once", "x", unique_key="once"))

    threads = [threading.Thread(target=add, args=(queue,)) for queue in queues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(ids) == 8 and store.count() == 1 and ready(queues[0], "once") == 1
    # every add that came after the winner's put names its job; one racing it may see 0
    assert len(set(ids) - {NOT_SCHEDULED}) == 1


def _add_in_process(address: tuple[str, int], spec: dict[str, str], barrier: Any, out: Any) -> None:
    from kqueue.stores.redis import RedisStore
    from kqueue.stores.sql import SQLStore

    store: Store
    if spec["kind"] == "redis":
        store = RedisStore(spec["url"], prefix=spec["prefix"])
    else:
        store = SQLStore(spec["url"])
    with KQueue(host=address[0], port=address[1], bulk_store=store) as queue:
        store.count()
        barrier.wait(timeout=60)
        out.put(queue.add_job("once", "x", unique_key="once"))
    store.close()


@pytest.mark.parametrize("kind", ["redis", "sqlite", "postgres", "mysql"])
def test_several_processes_adding_one_key_at_once_add_one_job(
    kind: str, beanstalkd: BeanstalkdProcess, request: pytest.FixtureRequest
) -> None:
    spec = {"kind": kind}
    if kind == "redis":
        spec.update(url=request.getfixturevalue("redis_url"))
        spec.update(prefix=request.getfixturevalue("redis_prefix"))
    else:
        spec["url"] = request.getfixturevalue(f"{kind}_url")
    store = open_test_store(kind, request)
    store.count()
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(4), context.Queue()
    args = ((beanstalkd.host, beanstalkd.port), spec, barrier, out)
    children = [context.Process(target=_add_in_process, args=args) for _ in range(4)]
    for child in children:
        child.start()
    ids = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    try:
        assert store.count() == 1
        assert len(set(ids) - {NOT_SCHEDULED}) == 1
        with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as queue:
            assert ready(queue, "once") == 1
    finally:
        store.close()


def test_a_recovery_pass_deletes_the_claims_that_no_longer_hold(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queue = make_queue()
    for n in range(3):
        queue.add_job("claims", n, unique_key=f"claims:{n}")
    queue.add_job("claims", "held", unique_key="claims:held", unique_for=3600)
    assert run_all(queue, "claims") == [0, 1, 2, "held"]
    queue.add_job("claims", "waiting", unique_key="claims:waiting")
    assert queue.sweep(grace=0).unique_keys_freed == 3
    assert queue.sweep(grace=0).unique_keys_freed == 0
    assert store.prune_unique(now=1e12) == (1, None)  # claims:held, once its hour is over
    assert queue.add_job("claims", "again", unique_key="claims:waiting") != NOT_SCHEDULED
    assert store.count() == 1
