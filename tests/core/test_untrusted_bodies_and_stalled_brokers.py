"""Bodies kqueue did not write (forged headers, another job type), unprintable errors, a
frozen broker, and purge holding jobs past their TTR."""

from __future__ import annotations

import signal
import threading
import time

import greenstalk
import pytest

from kqueue import Job, KQueue, RetryPolicy
from kqueue.beanstalk import BeanstalkConnection
from kqueue.purge import purge_tube
from kqueue.serialization import decode_body, encode_body
from tests.servers import BeanstalkdProcess

KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "header",
    [
        b"kq1 i " + KEY.encode() + b" json 5 0 forged\n1",  # ttr 0: kqueue never writes it
        b"kq1 i " + KEY.encode() + b" json 9999999999 5 forged\n1",  # priority over u32
    ],
)
def test_header_values_kqueue_never_writes_make_a_foreign_body(header: bytes) -> None:
    assert decode_body(header) is None


def test_body_naming_another_job_type_is_buried_not_spun(
    queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    ran: list[object] = []
    queue.add_handler("mine", ran.append)
    client.use("kq-mine")
    body = encode_body("i", key=KEY, codec="json", priority=5, ttr=5, job_type="other")
    forged = client.put(body + b"1")
    assert queue.run_jobs(time_limit_ms=0) == 0  # returns: the forged body did not spin
    assert client.stats_job(forged)["state"] == "buried"
    assert ran == []


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


def test_exception_that_cannot_be_printed_is_still_a_handled_failure(queue: KQueue) -> None:
    def handler(job: Job) -> None:
        raise Unprintable()

    queue.add_handler("u", handler, retry=RetryPolicy(max_attempts=1))
    queue.add_job("u", 1)
    assert queue.run_jobs(time_limit_ms=0) == 1
    assert queue.counters["buried"] == 1


def test_worker_rides_out_a_frozen_broker(real_beanstalkd: BeanstalkdProcess) -> None:
    beanstalkd = real_beanstalkd
    worker = KQueue(
        host=beanstalkd.host,
        port=beanstalkd.port,
        command_timeout=0.3,
        reconnect_delay=(0.05, 0.1),
    )
    seen: list[object] = []
    worker.add_handler("f", lambda job: seen.append(job.data))
    worker.add_job("f", "before")
    assert worker.run_jobs(time_limit_ms=0) == 1
    beanstalkd.signal(signal.SIGSTOP)  # alive but silent: commands time out
    threading.Timer(0.8, lambda: beanstalkd.signal(signal.SIGCONT)).start()
    worker.run_jobs(time_limit_ms=1500)  # must not raise BrokerTimeoutError
    worker.add_job("f", "after")
    assert worker.run_jobs(time_limit_ms=1000, count_limit=1) == 1
    assert seen == ["before", "after"]
    worker.close()


def test_purge_keeps_held_jobs_in_their_state_past_their_ttr(
    queue: KQueue, beanstalkd: BeanstalkdProcess, client: greenstalk.Client[bytes]
) -> None:
    delayed = queue.add_job("p", "later", delay=300, ttr=1)
    buried = queue.add_job("p", "dead", ttr=1)
    client.watch("kq-p")
    client.bury(client.reserve_job(buried))

    def slow_nothing_matches(body: bytes) -> bool:
        time.sleep(0.8)  # the walk outlasts the 1 s TTR of the held jobs
        return False

    conn = BeanstalkConnection(beanstalkd.host, beanstalkd.port)
    result = purge_tube(conn, "kq-p", slow_nothing_matches)
    assert result.deleted_bodies == []
    assert client.stats_job(delayed)["state"] == "delayed"
    assert client.stats_job(buried)["state"] == "buried"
