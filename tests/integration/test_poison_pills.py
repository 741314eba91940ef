"""A handler that kills its worker (os._exit, a segfault, the OOM killer) is a poison pill:
each death counts as an attempt, so after its budget the job is buried with the reason
recorded, unrun, and the jobs behind it run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kqueue import KQueue
from kqueue.stores.sql import SQLStore
from tests.servers import BeanstalkdProcess

WORKER = """
import os, sys
from kqueue import KQueue, RetryPolicy
host, port, db, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
queue = KQueue(host=host, port=port, bulk_store=f"sqlite:///{db}", window=1,
               retry=RetryPolicy(max_attempts=3))
def handler(job):
    if job.data == "poison":
        os._exit(17)  # the worker dies with the job reserved
    with open(log, "a") as out:
        out.write(f"{job.data}\\n")
queue.add_handler("pp", handler)
queue.run_jobs(time_limit_ms=0)
queue.close()
"""


def test_a_job_that_kills_its_worker_is_buried_after_its_budget_and_others_run(
    beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    db, log = tmp_path / "jobs.sqlite3", tmp_path / "ran.log"
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=f"sqlite:///{db}") as q:
        q.add_job("pp", "poison", priority=1)  # the most urgent: every worker takes it first
        q.add_jobs("pp", [f"job-{n}" for n in range(20)])
    args = [beanstalkd.host, str(beanstalkd.port), str(db), str(log)]
    deaths = 0
    for _ in range(6):
        worker = subprocess.run([sys.executable, "-c", WORKER, *args], timeout=60)
        if worker.returncode != 17:
            break
        deaths += 1
    assert deaths == 3  # the budget: three attempts, each ended by the worker's death
    ran = log.read_text().split()
    assert sorted(ran) == sorted(f"job-{n}" for n in range(20))
    with SQLStore(f"sqlite:///{db}") as store:
        [record] = store.scan()
    assert record.state == "buried" and record.attempts == 3
    assert record.last_error is not None and "never finished" in record.last_error
