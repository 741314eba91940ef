"""add_jobs over several batches with RedisStore: each batch's records are written while the
batch before has its puts sent (Producer._add_batches). Every job stays durable before its
put, and an add that raises leaves no record written ahead for a batch it never put."""

from __future__ import annotations

from collections.abc import Sequence

import greenstalk
import pytest

from kqueue import KQueue
from kqueue.enqueue import BATCH_SIZE
from kqueue.stores.base import RefSwap
from kqueue.stores.redis import RedisStore
from tests.servers import BeanstalkdProcess


def test_every_batch_is_written_put_and_referenced(
    beanstalkd: BeanstalkdProcess, redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    count = 2 * BATCH_SIZE + 7
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as queue:
        ids = queue.add_jobs("n", range(count))
        assert len(set(ids)) == count and min(ids) > 0
        records = store.scan(limit=count + 1)
        assert len(records) == count
        assert sorted(r.ref.job_id for r in records if r.ref is not None) == sorted(ids)
        seen: list[int] = []
        queue.add_handler("n", lambda job: seen.append(job.data))
        assert queue.run_jobs(time_limit_ms=0) == count
    assert sorted(seen) == list(range(count)) and store.count() == 0
    store.close()


class _SwapRaises(RedisStore):
    """A real Redis store whose reference swap fails with an unexpected error."""

    def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        raise RuntimeError("swap broke")


@pytest.mark.parametrize("strict", [False, True])
def test_an_add_that_raises_leaves_no_record_written_ahead(
    beanstalkd: BeanstalkdProcess, redis_url: str, redis_prefix: str, strict: bool
) -> None:
    store = _SwapRaises(redis_url, prefix=redis_prefix)
    queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store, strict=strict)
    with pytest.raises(RuntimeError, match="swap broke"):
        queue.add_jobs("n", range(BATCH_SIZE + 500))
    # The first batch was written and put (its jobs run); the second never reached beanstalkd
    # and its records, written ahead, were removed: the sweeper has nothing to put.
    assert store.count() == BATCH_SIZE
    with greenstalk.Client((beanstalkd.host, beanstalkd.port)) as client:
        assert client.stats_tube(queue.config.tube_prefix + "n")["current-jobs-ready"] == BATCH_SIZE
    queue.close()
    store.close()
