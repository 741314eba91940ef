"""The write-ahead path over every store: durable record first, small reference in beanstalkd."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import greenstalk
import pytest

from kqueue import (
    NOT_SCHEDULED,
    BrokerConnectionError,
    Job,
    KQueue,
    RecordTooLargeError,
    RetryPolicy,
    StoreError,
)
from kqueue.stores import Store
from kqueue.stores.base import BrokerRef
from tests.servers import BeanstalkdProcess, free_port, server_id

NO_WAIT = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0, jitter=False)


def test_record_is_written_before_a_small_reference_is_put(
    queue: KQueue, store: Store, client: greenstalk.Client[bytes]
) -> None:
    payload = {"text": "x" * 5000}
    job_id = queue.add_job("wa", payload)
    found = client.peek(job_id)
    assert len(found.body) < 120
    assert payload["text"].encode() not in found.body
    (record,) = store.scan(job_type="wa")
    assert record.ref == BrokerRef(server_id(client.stats()), job_id)
    assert record.payload == b'{"text":"' + b"x" * 5000 + b'"}'


def test_worker_reads_the_payload_from_the_store_and_deletes_the_record(
    queue: KQueue, store: Store
) -> None:
    seen: list[object] = []
    queue.add_handler("wa", lambda job: seen.append(job.data))
    queue.add_job("wa", {"n": 1})
    queue.add_job("wa", b"\x00binary\xff")
    assert store.count() == 2
    assert queue.run_jobs(time_limit_ms=0) == 2
    assert seen == [{"n": 1}, b"\x00binary\xff"]
    assert store.count() == 0


def test_store_given_as_url_is_opened(
    beanstalkd: BeanstalkdProcess, tmp_path: pytest.TempPathFactory
) -> None:
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    with KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=url) as queue:
        queue.add_handler("u", lambda job: None)
        queue.add_job("u", 1)
        assert queue.store is not None
        assert queue.store.count() == 1
        assert queue.run_jobs(time_limit_ms=0) == 1


def test_failed_store_write_raises_and_puts_nothing(
    beanstalkd: BeanstalkdProcess, client: greenstalk.Client[bytes]
) -> None:
    dead = f"redis://:secret@127.0.0.1:{free_port()}/0"
    queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=dead)
    with pytest.raises(StoreError) as info:
        queue.add_job("x", 1)
    assert "secret" not in str(info.value)
    assert client.stats()["total-jobs"] == 0


def test_put_failure_after_store_write_keeps_the_job_accepted(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue(connect_timeout=0.5)
    beanstalkd.kill()
    assert queue.add_job("later", {"keep": True}) == NOT_SCHEDULED
    (record,) = store.scan(job_type="later")
    assert record.ref is None
    assert queue.counters["added_unscheduled"] == 1


def test_strict_mode_removes_the_record_when_the_put_fails(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue(strict=True, connect_timeout=0.5)
    beanstalkd.kill()
    with pytest.raises(BrokerConnectionError):
        queue.add_job("strict", 1)
    assert store.count() == 0


def test_reference_whose_record_is_gone_is_dropped_without_running(
    queue: KQueue, store: Store, client: greenstalk.Client[bytes]
) -> None:
    ran: list[object] = []
    queue.add_handler("gone", ran.append)
    job_id = queue.add_job("gone", 1)
    (record,) = store.scan(job_type="gone")
    store.delete(record.key)
    assert queue.run_jobs(time_limit_ms=0) == 0
    assert ran == []
    assert queue.counters["stale_dropped"] == 1
    with pytest.raises(greenstalk.NotFoundError):
        client.stats_job(job_id)


def test_reference_that_is_not_the_records_current_one_is_a_dropped_duplicate(
    queue: KQueue, store: Store
) -> None:
    ran: list[object] = []
    queue.add_handler("dup", ran.append)
    first = queue.add_job("dup", 1)
    (record,) = store.scan(job_type="dup")
    assert record.ref is not None
    moved = BrokerRef(record.ref.server_id, first + 1000)
    assert store.swap_reference(record.key, record.ref, moved, now=record.created_at)
    assert queue.run_jobs(time_limit_ms=0) == 0
    assert queue.counters["duplicates_dropped"] == 1
    assert store.count() == 1


def test_retries_and_burial_are_kept_on_the_record(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queue = make_queue(retry=NO_WAIT)
    attempts: list[int] = []

    def fails(job: Job) -> None:
        attempts.append(job.attempts)
        raise ValueError(f"bad input {job.data}")

    queue.add_handler("f", fails)
    queue.add_job("f", 7)
    assert queue.run_jobs(time_limit_ms=0) == 2
    assert attempts == [1, 2]
    (record,) = store.scan(job_type="f")
    assert (record.attempts, record.state) == (2, "buried")
    assert record.last_error == "ValueError: bad input 7"


def test_no_record_leaks_after_success_failure_and_purge(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queue = make_queue(retry=NO_WAIT)

    def handler(job: Job) -> None:
        if job.data % 3 == 0:
            raise RuntimeError("fails")
        if job.data % 3 == 1:
            queue.delete_job(job)

    queue.add_handler("mix", handler)
    for i in range(30):
        queue.add_job("mix", i)
    queue.add_job("mix", "never run", delay=300)
    queue.run_jobs(time_limit_ms=0)
    assert store.count() == 11  # 10 buried + 1 delayed
    assert queue.purge_jobs("mix") == 11
    assert store.count() == 0


def test_purge_by_pattern_matches_stored_payloads_and_deletes_their_records(
    queue: KQueue, store: Store
) -> None:
    queue.add_job("pp", {"user": "alice"})
    queue.add_job("pp", {"user": "bob"})
    assert queue.purge_jobs("pp", pattern="alice") == 1
    (left,) = store.scan(job_type="pp")
    assert left.payload == b'{"user":"bob"}'


def test_stats_count_stored_records_per_job_type(queue: KQueue) -> None:
    queue.add_job("s1", 1)
    queue.add_job("s1", 2)
    queue.add_job("s2", 3)
    assert queue.stats().stored == {"s1": 2, "s2": 1}


def test_ten_megabyte_payload_travels_through_the_store_or_is_refused_whole(
    queue: KQueue, store: Store, client: greenstalk.Client[bytes]
) -> None:
    payload = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    if type(store).__name__ == "SQLStore" and "mysql" in repr(store):
        # MariaDB's max_allowed_packet (16 MB by default) cannot carry the statement: the
        # store must refuse the record up front, and beanstalkd must get nothing.
        with pytest.raises(RecordTooLargeError):
            queue.add_job("big", payload)
        assert store.count() == 0
        assert client.stats()["total-jobs"] == 0
        return
    seen: list[bytes] = []
    queue.add_handler("big", lambda job: seen.append(job.data))
    job_id = queue.add_job("big", payload)
    assert len(client.peek(job_id).body) < 120
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert seen == [payload]
    assert store.count() == 0


def test_purge_also_removes_matching_records_beanstalkd_lost(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    queue.add_job("lp", {"user": "alice"})
    queue.add_job("lp", {"user": "bob"})
    beanstalkd.restart(binlog_dir=False)  # both jobs lost; only their records remain
    assert queue.purge_jobs("lp", pattern="alice") == 1
    (left,) = store.scan(job_type="lp")
    assert left.payload == b'{"user":"bob"}'
    assert queue.sweep(grace=0).requeued == 1  # bob comes back, alice stays purged


def test_purge_keeps_records_of_jobs_reserved_by_workers(
    make_queue: Callable[..., KQueue], store: Store, beanstalkd: BeanstalkdProcess
) -> None:
    queue = make_queue()
    job_id = queue.add_job("busy", "x")
    with greenstalk.Client(beanstalkd.address, watch="kq-busy") as worker:
        worker.reserve_job(job_id)
        assert queue.purge_jobs("busy") == 0
        assert store.count() == 1


def test_error_text_with_nul_bytes_is_still_recorded_and_counted(
    make_queue: Callable[..., KQueue], store: Store
) -> None:
    queue = make_queue(retry=NO_WAIT)

    def fails(job: Job) -> None:
        raise ValueError("bad\x00byte")

    queue.add_handler("nul", fails)
    queue.add_job("nul", 1)
    assert queue.run_jobs(time_limit_ms=0) == 2
    (record,) = store.scan(job_type="nul")
    assert (record.attempts, record.state) == (2, "buried")
    assert record.last_error == "ValueError: bad\\x00byte"


def test_job_put_but_reference_not_saved_is_reported_as_added(
    make_queue: Callable[..., KQueue], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = make_queue()
    calls: list[object] = []

    def broken_swaps(*args: object, **kwargs: object) -> int:
        calls.append(args)
        raise StoreError("store went away after the put")

    monkeypatch.setattr(store, "swap_references", broken_swaps)
    job_id = queue.add_job("nosave", 1)
    assert job_id > 0
    assert len(calls) == 1, "the producer never tried to save the reference"
    monkeypatch.undo()
    ran: list[object] = []
    queue.add_handler("nosave", ran.append)
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert store.count() == 0


def test_inline_copy_too_big_for_the_server_falls_back_to_a_reference(
    store: Store, tmp_path: Path
) -> None:
    from tests.servers import beanstalkd_binary

    binary = beanstalkd_binary()
    assert binary is not None
    server = BeanstalkdProcess(binary, max_job_size=300)
    server.start()
    try:
        queue = KQueue(host=server.host, port=server.port, bulk_store=store)
        ran: list[object] = []
        queue.add_handler("big", lambda job: ran.append(job.data))
        payload = "y" * 500  # under inline_copy_max, over this server's 300 bytes
        assert queue.add_job("big", payload) > 0
        assert queue.run_jobs(time_limit_ms=0) == 1
        assert ran == [payload]
        queue.close()
    finally:
        server.stop()


def test_jobs_whose_records_the_store_lost_are_dropped_with_one_warning(
    make_queue: Callable[..., KQueue], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue()
    queue.add_jobs("forgotten", [1, 2, 3])
    store.delete_many([record.key for record in store.scan()])  # a Redis restarted empty
    ran: list[object] = []
    queue.add_handler("forgotten", ran.append)
    caplog.set_level(logging.INFO, logger="kqueue")
    queue.run_jobs(time_limit_ms=0)
    assert ran == []
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "no record" in r.message
    ]
    assert sum(int(r.message.split()[0]) for r in warnings) == 3
    assert not [r for r in caplog.records if "reference dropped" in r.message]  # not per job
