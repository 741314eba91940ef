"""A worker's one store read for a job whose payload came inline, while the producer's
reference swap is still on its way (the usual case for a lone job: the worker is woken by
the put, the producer swaps the reference after it).

The store answers the record whole when it does not name the job yet, in the same round trip
on a store that can (Redis), so the job runs without a second read, and with the record's
payload, never an unchecked copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import greenstalk

from kqueue import Job, KQueue
from kqueue.keys import new_key
from kqueue.serialization import encode_body
from kqueue.stores import Store
from kqueue.stores.base import StoreBase, new_record

READS = ("get_checked_many", "get_status_many", "get_many")


def _count_reads(store: Store) -> dict[str, int]:
    """Count the store's record reads (the instance's own methods, wrapped)."""
    calls = dict.fromkeys(READS, 0)
    for name in READS:
        method = getattr(store, name)

        def counted(*args: Any, _name: str = name, _method: Any = method) -> Any:
            calls[_name] += 1
            return _method(*args)

        setattr(store, name, counted)
    return calls


def _put_before_swap(store: Store, client: greenstalk.Client[bytes], payload: object) -> str:
    """What a producer has done when its put lands: the record written, the body with its
    copy put, the reference not swapped in yet."""
    key, data = new_key(), json.dumps(payload).encode()
    record = new_record(key, "mail", data, "json", priority=100, delay=0, ttr=30, now=time.time())
    store.put(record)
    client.use("kq-mail")
    body = encode_body("s", key=key, codec="json", priority=100, ttr=30, job_type="mail")
    client.put(body + data)
    return key


def test_a_copy_whose_reference_is_not_swapped_yet_runs_after_one_checked_read(
    make_queue: Callable[..., KQueue], store: Store, client: greenstalk.Client[bytes]
) -> None:
    # Given a job put before the producer swapped its reference in
    queue = make_queue()
    ran: list[Job] = []
    queue.add_handler("mail", ran.append)
    key = _put_before_swap(store, client, {"to": "alice"})
    calls = _count_reads(store)
    # When the worker runs it
    assert queue.run_jobs(time_limit_ms=0) == 1
    read = dict(calls)
    # Then it ran once, with the record's payload, and the record is gone
    assert [job.data for job in ran] == [{"to": "alice"}]
    assert store.get(key) is None
    # And the worker read the record once, checked; a store answering the whole record in
    # the same reply (Redis) read nothing more (the fallback reads it whole after)
    assert read["get_checked_many"] == 1
    if getattr(type(store), "get_checked_many", None) is not StoreBase.get_checked_many:
        assert read["get_many"] == read["get_status_many"] == 0
