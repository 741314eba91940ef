"""A store written before unique keys (StoreBase's fallbacks) still serves every other add."""

from __future__ import annotations

import pytest

from kqueue import KQueue
from kqueue.errors import StoreError
from kqueue.stores import MemoryStore
from kqueue.stores.base import StoreBase
from tests.servers import BeanstalkdProcess


class StoreWithoutUniqueKeys(MemoryStore):
    """A store as a third party wrote it before unique keys existed."""

    put_unique = StoreBase.put_unique
    release_unique = StoreBase.release_unique
    prune_unique = StoreBase.prune_unique


def test_a_unique_add_is_refused_and_the_rest_works(beanstalkd: BeanstalkdProcess) -> None:
    store = StoreWithoutUniqueKeys()
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store) as queue:
        with pytest.raises(StoreError, match="does not support unique keys"):
            queue.add_job("report", 1, unique_key="report:1")
        assert store.count() == 0
        assert queue.add_job("report", 2) > 0
        report = queue.sweep(grace=0)
        assert (report.errors, report.unique_keys_freed) == ([], 0)
