"""docs/examples/starlette_app.py: a request enqueues a job, and the async worker runs it."""

from __future__ import annotations

import functools
from pathlib import Path

import greenstalk
import pytest
from starlette.testclient import TestClient

from docs.examples import starlette_app
from tests.servers import BeanstalkdProcess


def test_a_request_enqueues_a_job_that_the_async_worker_runs(
    beanstalkd: BeanstalkdProcess, tmp_path: Path, client: greenstalk.Client[bytes]
) -> None:
    # Given the example app on this test's beanstalkd and a SQLite store
    jobs = starlette_app.make_queue(
        host=beanstalkd.host, port=beanstalkd.port, bulk_store=f"sqlite:///{tmp_path}/j.db"
    )
    app = starlette_app.create_app(jobs)
    with TestClient(app) as http:
        # When a request signs someone up
        response = http.post("/signup", json={"email": "ada@example.com"})
        # Then the job is queued at once, durably, and not yet run
        assert response.status_code == 202
        job_id = response.json()["queued"]
        assert client.stats_job(job_id)["state"] == "ready"
        assert jobs.store is not None and jobs.store.count() == 1
        # And the async worker (on the app's own loop) runs it and deletes it
        run = functools.partial(jobs.run_jobs, count_limit=1, concurrency=10)
        assert http.portal.call(run) == 1
    assert "ada@example.com" in starlette_app.SENT
    with pytest.raises(greenstalk.NotFoundError):
        client.stats_job(job_id)
