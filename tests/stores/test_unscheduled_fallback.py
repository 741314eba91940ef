"""A store written before the index by time (StoreBase's scan_unscheduled, which filters the
records without a reference) answers as the built-in stores do, and recovery works on it."""

from __future__ import annotations

from kqueue import NOT_SCHEDULED, KQueue
from kqueue.stores import BrokerRef, MemoryStore
from kqueue.stores.base import StoreBase, unscheduled_cursor
from tests.contract.records import make_record
from tests.servers import BeanstalkdProcess


class StoreWithoutTimeIndex(MemoryStore):
    """A store as a third party wrote it before the index by time existed."""

    scan_unscheduled = StoreBase.scan_unscheduled


def test_the_fallback_pages_in_time_then_key_order() -> None:
    store = StoreWithoutTimeIndex()
    store.put_many([make_record(f"k{i:03d}", updated_at=float(i % 7)) for i in range(600)])
    store.put(make_record("scheduled", updated_at=0.0, ref=BrokerRef("s1", 1)))
    expected = sorted(
        (r for r in store.scan_referencing(None, limit=1000) if r.updated_at < 5.0),
        key=unscheduled_cursor,
    )
    seen, after = [], None
    while page := store.scan_unscheduled(before=5.0, after=after, limit=64):
        seen += page
        after = unscheduled_cursor(page[-1])
    assert seen == expected and len(seen) < 600


def test_recovery_puts_back_the_unscheduled_records_of_such_a_store(
    beanstalkd: BeanstalkdProcess,
) -> None:
    store = StoreWithoutTimeIndex()
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as queue:
        beanstalkd.kill()
        assert queue.add_job("late", 1) == NOT_SCHEDULED
        beanstalkd.start()
        assert queue.sweep(grace=0).requeued == 1
