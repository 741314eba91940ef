"""Bodies another client put into a kqueue tube, naming the key of a real record: the record
decides what runs (its payload, its job type's handler), and no record is lost to a forgery.

A record not yet scheduled (the producer wrote it and has not put its reference yet, or the
broker was down) names no beanstalkd job, so a body carrying a copy of its payload cannot be
checked against it: the worker reads the whole record instead of trusting the copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import greenstalk

from kqueue import Job, KQueue
from kqueue.keys import new_key
from kqueue.serialization import encode_body
from kqueue.stores import Store
from kqueue.stores.base import new_record


def _pending_record(store: Store, job_type: str, payload: object) -> str:
    """A record as the producer writes it before its put: no beanstalkd job named yet."""
    key = new_key()
    data = json.dumps(payload).encode()
    store.put(
        new_record(key, job_type, data, "json", priority=100, delay=0, ttr=30, now=time.time())
    )
    return key


def _forge(client: greenstalk.Client[bytes], job_type: str, key: str, payload: object) -> int:
    """Put a body with a copy of ``payload`` under ``key`` into ``job_type``'s tube."""
    client.use("kq-" + job_type)
    data = json.dumps(payload).encode()
    body = encode_body("s", key=key, codec="json", priority=100, ttr=30, job_type=job_type)
    return client.put(body + data)


def test_a_forged_copy_of_a_pending_record_runs_the_records_payload(
    make_queue: Callable[..., KQueue], store: Store, client: greenstalk.Client[bytes]
) -> None:
    queue = make_queue()
    ran: list[object] = []
    queue.add_handler("mail", lambda job: ran.append(job.data))
    key = _pending_record(store, "mail", {"to": "alice"})
    _forge(client, "mail", key, {"to": "mallory"})

    assert queue.run_jobs(time_limit_ms=0) == 1
    assert ran == [{"to": "alice"}]  # the record's payload, never the forged copy
    assert store.get(key) is None  # the job it names is done, once


def test_a_forged_copy_naming_another_types_pending_record_never_reaches_its_handler(
    make_queue: Callable[..., KQueue], store: Store, client: greenstalk.Client[bytes]
) -> None:
    queue = make_queue()
    mail: list[object] = []
    pay: list[object] = []
    queue.add_handler("mail", lambda job: mail.append(job.data))
    queue.add_handler("pay", lambda job: pay.append(job.data))
    key = _pending_record(store, "pay", {"amount": 10})
    forged = _forge(client, "mail", key, {"to": "mallory"})

    queue.run_jobs(time_limit_ms=0)
    assert mail == [] and pay == []
    assert client.stats_job(forged)["state"] == "buried"  # kept for an operator to look at
    record = store.get(key)
    assert record is not None and record.job_type == "pay"  # the real job is still owed

    assert queue.sweep(grace=0).requeued == 1  # and recovery delivers it
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert pay == [{"amount": 10}]


def test_a_forged_copy_of_a_scheduled_job_is_a_duplicate_and_the_real_job_runs_once(
    make_queue: Callable[..., KQueue], store: Store, client: greenstalk.Client[bytes]
) -> None:
    queue = make_queue()
    ran: list[object] = []
    queue.add_handler("mail", lambda job: ran.append(job.data))
    queue.add_job("mail", {"to": "alice"}, priority=200)  # behind the forgery
    (key,) = [record.key for record in store.scan()]
    _forge(client, "mail", key, {"to": "mallory"})

    queue.run_jobs(time_limit_ms=0)
    assert ran == [{"to": "alice"}]


def test_the_real_copy_still_runs_from_the_body_when_the_record_names_it(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    """The ordinary path is unchanged: a copy its record names runs (and finishes) as put."""
    queue = make_queue(inline_copy_max=1024)
    done: list[Job] = []
    queue.add_handler("mail", done.append)
    queue.add_jobs("mail", [{"n": n} for n in range(5)])
    assert queue.run_jobs(time_limit_ms=0) == 5
    assert sorted(job.data["n"] for job in done) == list(range(5))
    assert store.count() == 0
