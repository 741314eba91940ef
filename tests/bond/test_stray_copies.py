"""A second copy of a job on another server of a bonded queue (a put retried elsewhere after
its server froze and later took it after all, a recovery or drain that moved the job): the
record names the job to run, so a copy on another live server is dropped unrun, while a copy
whose record names a server the queue no longer reaches still runs (it may be the only one)."""

from __future__ import annotations

from collections.abc import Callable

from kqueue import KQueue
from kqueue.beanstalk.connection import BeanstalkConnection
from kqueue.stores import MemoryStore
from kqueue.stores.base import iter_records
from tests.bond.conftest import id_of, ready_on
from tests.servers import BeanstalkdProcess

TUBE = "kq-mail"


def _copy_elsewhere(trio: list[BeanstalkdProcess], store: MemoryStore) -> tuple[int, int]:
    """Put a copy of the queue's one job on another server; (holder, copy) indexes."""
    (record,) = list(iter_records(store))
    assert record.ref is not None
    holder = next(i for i, broker in enumerate(trio) if id_of(broker) == record.ref.server_id)
    source = BeanstalkConnection(trio[holder].host, trio[holder].port, command_timeout=5)
    job = source.peek(record.ref.job_id)
    source.close()
    assert job is not None
    other = (holder + 1) % len(trio)
    target = BeanstalkConnection(trio[other].host, trio[other].port, command_timeout=5)
    target.use(TUBE)
    target.put(job.body, priority=0, delay=0, ttr=30)  # before the job itself
    target.close()
    return holder, other


def test_a_copy_on_another_live_server_is_dropped_and_the_job_runs_once(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    make_bonded(bulk_store=store).add_job("mail", "hello")
    holder, other = _copy_elsewhere(trio, store)
    (record,) = list(iter_records(store))
    assert record.ref is not None
    # The job itself is out of reach (reserved by another worker, or on a slow server) while
    # this worker comes to the copy.
    elsewhere = BeanstalkConnection(trio[holder].host, trio[holder].port, command_timeout=5)
    assert elsewhere.reserve_job(record.ref.job_id) is not None
    worker = make_bonded(bulk_store=store)
    seen: list[str] = []
    worker.add_handler("mail", lambda job: seen.append(job.data))
    worker.run_jobs(time_limit_ms=500)
    assert seen == []  # the copy was dropped unrun
    assert ready_on(trio[other], TUBE) == 0
    elsewhere.close()  # the job goes back to ready, and runs
    worker.run_jobs(count_limit=1, time_limit_ms=5000)
    assert seen == ["hello"]
    assert ready_on(trio[holder], TUBE) == 0
    assert list(iter_records(store)) == []


def test_a_copy_whose_record_names_a_server_gone_runs(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    make_bonded(bulk_store=store, server_down_grace=0.1).add_job("mail", "hello")
    holder, other = _copy_elsewhere(trio, store)
    trio[holder].kill()
    worker = make_bonded(bulk_store=store)
    seen: list[str] = []
    worker.add_handler("mail", lambda job: seen.append(job.data))
    worker.run_jobs(count_limit=1, time_limit_ms=5000)
    assert seen == ["hello"]
    assert ready_on(trio[other], TUBE) == 0
