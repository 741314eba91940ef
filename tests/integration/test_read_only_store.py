"""A store that can be read but not written (a PostgreSQL standby after a failover, a full
disk, revoked DELETE rights): finished jobs whose records cannot be deleted run again only
after a growing delay, the worker slows down, and no job is lost."""

from __future__ import annotations

from urllib.parse import quote

import greenstalk
import pytest

from kqueue import KQueue
from tests.servers import BeanstalkdProcess


@pytest.fixture
def read_only_url(postgres_url: str) -> str:
    """The same database, on sessions that refuse every write, as a hot standby does."""
    return f"{postgres_url}?options={quote('-c default_transaction_read_only=on')}"


def test_jobs_finished_on_a_read_only_store_are_not_rerun_in_a_storm(
    beanstalkd: BeanstalkdProcess,
    postgres_url: str,
    read_only_url: str,
    client: greenstalk.Client[bytes],
) -> None:
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=postgres_url) as writer:
        writer.add_jobs("ro", ["a", "b", "c"])
        runs: list[str] = []
        with KQueue(
            host=beanstalkd.host,
            port=beanstalkd.port,
            bulk_store=read_only_url,
            reconnect_delay=(0.2, 2.0),
        ) as reader:
            reader.add_handler("ro", lambda job: runs.append(job.data))
            reader.run_jobs(time_limit_ms=3000)
        # Before: 1,347 runs of 3 jobs in 3 s. Each run now waits 1, 2, 4 ... s to come back.
        assert 3 <= len(runs) <= 12, f"{len(runs)} runs of 3 jobs in 3 s"
        assert writer.store is not None and writer.store.count() == 3  # nothing lost
        client.use("kq-ro")
        client.kick(10)  # the delayed ones back from their re-run delays, for the writer
        done: list[str] = []
        writer.add_handler("ro", lambda job: done.append(job.data))
        writer.run_jobs(count_limit=3, time_limit_ms=10_000)
        assert sorted(done) == ["a", "b", "c"]
        assert writer.store.count() == 0
