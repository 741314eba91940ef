"""Unique jobs and periodic jobs, end to end, on an in-process broker and a SQLite store.

Run it: ``python docs/examples/unique_and_periodic.py`` (needs ``pip install kqueue[periodic]``).
The guide (docs/guide.md, "Unique jobs" and "Periodic jobs") quotes it; tests/test_docs_examples.py
runs it and checks that the guide's excerpts are still in it.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fakebeanstalk import FakeBeanstalkServer
from kqueue import NOT_SCHEDULED, KQueue, Scheduler, UniqueFor


def unique_jobs(queue: KQueue) -> None:
    """While a job holds its unique key, adding the same key again adds nothing."""
    first = queue.add_job("report.build", {"user": 42}, unique_key="report:42")
    again = queue.add_job("report.build", {"user": 42}, unique_key="report:42")
    assert again == first  # the waiting job's id: nothing was added

    # Held until a worker starts the job: a change made while it runs queues one more sync.
    queue.add_job(
        "search.sync", {"index": "users"}, unique_key="sync:users", unique_for=UniqueFor.START
    )

    # Held ten minutes, whatever happens to the job: at most one reminder per ten minutes.
    queue.add_job(
        "mail.remind", {"user": 42}, unique_key="remind:42", unique_for=timedelta(minutes=10)
    )

    # add_jobs: a key per payload, here a function of it; the first job of each key is added.
    ids = queue.add_jobs(
        "report.build",
        [{"user": 7}, {"user": 42}, {"user": 7}],
        unique_key=lambda payload: f"report:{payload['user']}",
    )
    assert ids[1] == first and ids[0] == ids[2] != NOT_SCHEDULED


def periodic_jobs(queue: KQueue) -> list[object]:
    """Cron schedules, run here by a Scheduler with a pretended clock."""
    queue.add_periodic("report.daily", "0 6 * * *", tz="Europe/Riga", payload={"kind": "daily"})
    queue.add_periodic("cache.warm", "*/10 * * * *", missed="run_once")

    seen: list[object] = []
    queue.add_handler("report.daily", lambda job: seen.append(job.data))
    queue.add_handler("cache.warm", lambda job: seen.append(job.data))

    riga = ZoneInfo("Europe/Riga")
    now = datetime(2026, 7, 1, 6, 0, 5, tzinfo=riga).timestamp()
    scheduler = Scheduler(queue, clock=lambda: now)  # the real clock when none is given
    fired = scheduler.run_pending()
    assert sorted(f.schedule for f in fired) == ["cache.warm", "report.daily"]
    assert Scheduler(queue, clock=lambda: now + 30).run_pending()  # another scheduler...
    ran = queue.run_jobs(time_limit_ms=0, job_types=["report.daily", "cache.warm"])
    assert ran == 2  # ...added nothing more: one job per tick
    return seen


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, FakeBeanstalkServer(port=0) as broker:
        store = f"sqlite:///{Path(folder) / 'jobs.sqlite3'}"
        with KQueue(host=broker.host, port=broker.port, bulk_store=store) as queue:
            queue.add_handler("report.build", lambda job: None)
            unique_jobs(queue)
            print("periodic jobs ran:", periodic_jobs(queue))


if __name__ == "__main__":
    main()
