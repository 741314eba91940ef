"""Lanes (``KQueue(lanes=N)``): job types sharing N tubes, against a real beanstalkd."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator

import greenstalk
import pytest

from kqueue import ConfigurationError, InvalidJobTypeError, KQueue
from kqueue.aio import AsyncKQueue
from kqueue.cli.config import Settings, rebind
from kqueue.lane_gate import HAND_BACK_DELAY, SUSPENDED_REFRESH
from kqueue.lanes import lane_index, lane_tube
from kqueue.stores.memory import MemoryStore
from tests.core.conftest import tube_stats
from tests.servers import BeanstalkdProcess


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    """A memory store shared by the test's queues (one process: one store)."""
    shared = MemoryStore()
    yield shared


def kq_tubes(client: greenstalk.Client[bytes]) -> list[str]:
    """The tubes of the kq- prefix that beanstalkd holds."""
    return sorted(tube for tube in client.tubes() if tube.startswith("kq-"))


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 1025, True, 1.5, "4"])
def test_a_bad_number_of_lanes_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="lanes"):
        KQueue(lanes=bad)  # type: ignore[arg-type]


def test_lanes_are_refused_with_several_servers_and_by_the_asyncio_queue() -> None:
    with pytest.raises(ConfigurationError, match="several beanstalkd servers"):
        KQueue(servers=["127.0.0.1:1", "127.0.0.1:2"], lanes=4)
    with pytest.raises(ConfigurationError, match="asyncio queue does not run lanes"):
        AsyncKQueue(lanes=4)


def test_lanes_come_from_the_flag_over_the_environment() -> None:
    none = argparse.Namespace()
    assert Settings.from_args(none, {}).lanes is None
    assert Settings.from_args(none, {"KQUEUE_LANES": "8"}).lanes == 8
    assert Settings.from_args(argparse.Namespace(lanes="16"), {"KQUEUE_LANES": "8"}).lanes == 16
    with pytest.raises(ConfigurationError, match="whole number"):
        Settings.from_args(none, {"KQUEUE_LANES": "many"})


def test_the_command_line_rebinds_an_application_queue_to_its_lanes() -> None:
    app = KQueue(tube_prefix="app-")
    app.add_handler("t", lambda job: None)
    given = Settings.from_args(argparse.Namespace(lanes="8"), {})
    rebound = rebind(app, given)
    assert (rebound.config.lanes, rebound.config.tube_prefix) == (8, "app-")
    assert "t" in rebound.handlers
    assert rebind(app, Settings.from_args(argparse.Namespace(), {})) is app


def test_a_job_type_named_like_a_lane_is_refused_only_with_lanes(
    make_queue: Callable[..., KQueue],
) -> None:
    plain, laned = make_queue(), make_queue(lanes=4)
    assert plain.add_job("(lane)3", 1) > 0
    with pytest.raises(InvalidJobTypeError, match="lane"):
        laned.add_job("(lane)3", 1)
    with pytest.raises(InvalidJobTypeError, match="lane"):
        laned.add_handler("(lane)3", lambda job: None)


# -- routing and running -----------------------------------------------------------------


def test_jobs_of_many_types_go_into_at_most_n_tubes_and_all_run(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    producer, worker = make_queue(lanes=4), make_queue(lanes=4)
    types = [f"t{i}" for i in range(40)]
    ran: list[str] = []
    for job_type in types:
        producer.add_job(job_type, job_type)
        worker.add_handler(job_type, lambda job: ran.append(job.data))
    assert kq_tubes(client) == sorted(lane_tube(i, "kq-") for i in range(4))
    for job_type in types[:3]:
        lane = lane_tube(lane_index(job_type, 4), "kq-")
        assert tube_stats(client, lane)["current-jobs-ready"] >= 1
    assert worker.run_jobs(time_limit_ms=2000, count_limit=40) == 40
    assert sorted(ran) == sorted(types)


def test_without_lanes_each_type_keeps_its_own_tube(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    make_queue().add_job("plain", 1)
    assert kq_tubes(client) == ["kq-plain"]


@pytest.mark.parametrize("stored", [True, False], ids=["store", "inline"])
def test_a_job_of_a_type_without_handler_here_is_handed_back_uncounted(
    make_queue: Callable[..., KQueue],
    client: greenstalk.Client[bytes],
    store: MemoryStore,
    stored: bool,
) -> None:
    options = {"lanes": 1, "bulk_store": store if stored else None}
    producer, worker_a, worker_b = (
        make_queue(**options),
        make_queue(**options),
        make_queue(**options),
    )
    producer.add_job("b", "for b")
    producer.add_job("a", "for a")
    worker_a.add_handler("a", lambda job: None)
    attempts: list[int] = []
    worker_b.add_handler("b", lambda job: attempts.append(job.attempts))
    started = time.monotonic()
    assert worker_a.run_jobs(time_limit_ms=300) == 1  # a ran; b went back, delayed
    assert time.monotonic() - started < 1.0, "no busy loop on the job it cannot run"
    lane = lane_tube(0, "kq-")
    assert tube_stats(client, lane)["current-jobs-delayed"] == 1
    assert worker_a.run_jobs(time_limit_ms=HAND_BACK_DELAY * 1000 + 300) == 0  # b again
    assert worker_b.run_jobs(time_limit_ms=HAND_BACK_DELAY * 2000 + 500, count_limit=1) == 1
    assert attempts == [1], "hand-backs counted as attempts"


def test_a_run_limited_to_some_types_hands_the_others_back(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    queue = make_queue(lanes=1)
    ran: list[str] = []
    for job_type in ("x", "y"):
        queue.add_handler(job_type, lambda job: ran.append(job.job_type))
        queue.add_job(job_type, 1)
    assert queue.run_jobs(time_limit_ms=300, job_types=["y"]) == 1
    assert ran == ["y"]
    assert tube_stats(client, lane_tube(0, "kq-"))["current-jobs-delayed"] == 1


def test_a_worker_with_other_lanes_reports_the_disagreement_and_still_runs_the_job(
    make_queue: Callable[..., KQueue], caplog: pytest.LogCaptureFixture
) -> None:
    # Two types that share lane 0 of 1 but sit in different lanes of 2.
    first, second = "a", next(t for t in "bcdefgh" if lane_index(t, 2) != lane_index("a", 2))
    producer, worker = make_queue(lanes=1), make_queue(lanes=2)
    ran: list[str] = []
    for job_type in (first, second):
        producer.add_job(job_type, 1)
        worker.add_handler(job_type, lambda job: ran.append(job.job_type))
    with caplog.at_level(logging.ERROR, logger="kqueue"):
        assert worker.run_jobs(time_limit_ms=500, count_limit=2) == 2
    assert sorted(ran) == sorted([first, second])
    assert "disagree on lanes" in caplog.text


# -- suspend and resume ------------------------------------------------------------------


def test_suspend_holds_one_type_of_a_shared_lane_and_resume_brings_it_back(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes], store: MemoryStore
) -> None:
    admin, worker = make_queue(lanes=1, bulk_store=store), make_queue(lanes=1, bulk_store=store)
    ran: list[tuple[str, int]] = []
    for job_type in ("held", "free"):
        worker.add_handler(job_type, lambda job: ran.append((job.job_type, job.attempts)))
    admin.suspend("held")
    for i in range(3):
        admin.add_job("held", i)
        admin.add_job("free", i)
    assert worker.run_jobs(time_limit_ms=500) == 3
    assert ran == [("free", 1)] * 3
    assert tube_stats(client, "kq-held")["current-jobs-ready"] == 3  # moved, paused
    assert tube_stats(client, lane_tube(0, "kq-"))["current-jobs-ready"] == 0
    admin.resume("held")
    assert tube_stats(client, "kq-held")["current-jobs-ready"] == 0
    assert worker.run_jobs(time_limit_ms=500) == 3
    assert ran[3:] == [("held", 1)] * 3, "a held job lost its place or counted an attempt"
    assert store.count() == 0


def test_a_running_worker_learns_of_a_suspension_within_the_refresh(
    make_queue: Callable[..., KQueue], store: MemoryStore
) -> None:
    admin, worker = make_queue(lanes=1, bulk_store=store), make_queue(lanes=1, bulk_store=store)
    ran: list[int] = []
    worker.add_handler("s", lambda job: ran.append(job.data))
    admin.add_job("s", 0)
    assert worker.run_jobs(time_limit_ms=300) == 1  # the worker read "none suspended"
    admin.suspend("s")
    time.sleep(SUSPENDED_REFRESH + 0.1)
    admin.add_job("s", 1)
    assert worker.run_jobs(time_limit_ms=300) == 0
    assert ran == [0]


def test_suspend_with_lanes_but_no_store_is_refused_and_changes_nothing(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    with pytest.raises(ConfigurationError, match="needs a bulk store"):
        make_queue(lanes=2).suspend("s")
    assert "kq-s" not in client.tubes()


# -- purge -------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [True, False], ids=["store", "inline"])
def test_purge_deletes_only_the_matching_type_of_a_shared_lane(
    make_queue: Callable[..., KQueue], store: MemoryStore, stored: bool
) -> None:
    queue = make_queue(lanes=1, bulk_store=store if stored else None)
    for i in range(4):
        queue.add_job("keep", {"n": i})
        queue.add_job("drop", {"n": i})
    assert queue.purge_jobs("drop", r'"n": ?[01]\b') == 2
    assert queue.purge_jobs("drop") == 2
    kept: list[str] = []
    for job_type in ("keep", "drop"):
        queue.add_handler(job_type, lambda job: kept.append(job.job_type))
    assert queue.run_jobs(time_limit_ms=300) == 4
    assert kept == ["keep"] * 4
    if stored:
        assert store.count() == 0


def test_purge_reaches_the_jobs_held_for_a_suspended_type(
    make_queue: Callable[..., KQueue], store: MemoryStore, client: greenstalk.Client[bytes]
) -> None:
    admin, worker = make_queue(lanes=1, bulk_store=store), make_queue(lanes=1, bulk_store=store)
    worker.add_handler("held", lambda job: None)
    admin.suspend("held")
    admin.add_job("held", 1)
    assert worker.run_jobs(time_limit_ms=300) == 0
    assert tube_stats(client, "kq-held")["current-jobs-ready"] == 1
    assert admin.purge_jobs("held") == 1
    assert store.count() == 0


# -- recovery ----------------------------------------------------------------------------


def test_the_sweeper_puts_lost_jobs_back_into_their_lanes(
    make_queue: Callable[..., KQueue],
    beanstalkd: BeanstalkdProcess,
    client: greenstalk.Client[bytes],
    store: MemoryStore,
) -> None:
    queue = make_queue(lanes=4, bulk_store=store)
    types = [f"r{i}" for i in range(12)]
    for job_type in types:
        queue.add_job(job_type, job_type)
    beanstalkd.restart(binlog_dir=False)  # empty: every job lost but the records
    report = queue.sweep()
    assert report.requeued == 12
    fresh = greenstalk.Client(beanstalkd.address, encoding=None)
    try:
        assert kq_tubes(fresh) == sorted({lane_tube(lane_index(t, 4), "kq-") for t in types})
    finally:
        fresh.close()
    ran: list[str] = []
    for job_type in types:
        queue.add_handler(job_type, lambda job: ran.append(job.data))
    assert queue.run_jobs(time_limit_ms=1000, count_limit=12) == 12
    assert sorted(ran) == sorted(types)


def test_suspend_and_resume_with_lanes_on_redis(
    make_queue: Callable[..., KQueue], redis_url: str, redis_prefix: str
) -> None:
    from kqueue.stores.redis import RedisStore

    store = RedisStore(redis_url, prefix=redis_prefix)
    try:
        admin, worker = make_queue(lanes=2, bulk_store=store), make_queue(lanes=2, bulk_store=store)
        ran: list[tuple[str, int]] = []
        for job_type in ("held", "free"):
            worker.add_handler(job_type, lambda job: ran.append((job.job_type, job.attempts)))
        admin.suspend("held")
        admin.add_jobs("held", [1, 2])
        admin.add_jobs("free", [1, 2])
        assert worker.run_jobs(time_limit_ms=500) == 2
        admin.resume("held")
        assert worker.run_jobs(time_limit_ms=500) == 2
        assert sorted(ran) == [("free", 1)] * 2 + [("held", 1)] * 2
        assert store.count() == 0
    finally:
        store.close()


# -- kick, peek, stats -------------------------------------------------------------------


def test_kick_by_type_kicks_only_that_types_buried_jobs_of_a_shared_lane(
    make_queue: Callable[..., KQueue], store: MemoryStore, client: greenstalk.Client[bytes]
) -> None:
    queue = make_queue(lanes=1, bulk_store=store)
    for job_type in ("dead", "other"):
        queue.add_handler(job_type, lambda job: queue.bury_job(job))
        queue.add_jobs(job_type, [1, 2])
    assert queue.run_jobs(time_limit_ms=300) == 4
    assert tube_stats(client, lane_tube(0, "kq-"))["current-jobs-buried"] == 4
    assert queue.kick_buried("dead") == 2
    lane = tube_stats(client, lane_tube(0, "kq-"))
    assert (lane["current-jobs-buried"], lane["current-jobs-ready"]) == (2, 2)
    with pytest.raises(ConfigurationError, match="needs a bulk store"):
        make_queue(lanes=1).kick_buried("dead")


def test_peek_by_type_shows_a_job_of_that_type_or_none(make_queue: Callable[..., KQueue]) -> None:
    queue = make_queue(lanes=1)
    queue.add_job("first", 1)
    queue.add_job("second", 2)
    found = queue.admin.peek_next("first", "ready")
    assert found is not None and b"first" in found.body
    assert queue.admin.peek_next("second", "ready") is None  # behind a job of another type


def test_stats_with_lanes_count_per_lane(
    make_queue: Callable[..., KQueue], store: MemoryStore
) -> None:
    queue = make_queue(lanes=2, bulk_store=store)
    for job_type in ("a", "b", "c"):
        queue.add_job(job_type, 1)
    stats = queue.stats()
    lanes = {lane_tube(lane_index(t, 2), "") for t in ("a", "b", "c")}
    assert set(stats.job_types) == lanes
    assert sum(s["current-jobs-ready"] for s in stats.job_types.values()) == 3
    assert store.count("a") == 1  # per type: the store's figures


def test_a_worker_with_lanes_reports_jobs_of_its_types_left_in_their_own_tubes(
    make_queue: Callable[..., KQueue], caplog: pytest.LogCaptureFixture
) -> None:
    make_queue().add_job("stray", 1)  # a producer without lanes
    worker = make_queue(lanes=4)
    worker.add_handler("stray", lambda job: None)
    with caplog.at_level(logging.ERROR, logger="kqueue"):
        assert worker.run_jobs(time_limit_ms=200) == 0
    assert "wait in tube kq-stray" in caplog.text


def test_a_move_to_the_held_tube_gives_way_when_the_record_changed_meanwhile(
    make_queue: Callable[..., KQueue],
    beanstalkd: BeanstalkdProcess,
    client: greenstalk.Client[bytes],
    store: MemoryStore,
) -> None:
    from kqueue.beanstalk.connection import BeanstalkConnection
    from kqueue.lane_gate import hold
    from kqueue.serialization import decode_body
    from kqueue.stores.base import BrokerRef

    queue = make_queue(lanes=1, bulk_store=store)
    queue.add_job("s", 1)
    conn = BeanstalkConnection(beanstalkd.host, beanstalkd.port)
    try:
        conn.watch(lane_tube(0, "kq-"))
        reserved = conn.reserve(timeout=1)
        assert reserved is not None
        body = decode_body(reserved.body)
        assert body is not None
        stale = BrokerRef(conn.server_id(), reserved.id + 1000)  # not the record's reference
        hold(conn, store, reserved.id, body, stale, "kq-")
    finally:
        conn.close()
    assert tube_stats(client, "kq-s")["current-jobs-ready"] == 0  # the copy went again
    assert tube_stats(client, lane_tube(0, "kq-"))["current-jobs-delayed"] == 1


def test_the_command_lines_typo_warning_looks_at_the_lane(
    make_queue: Callable[..., KQueue], client: greenstalk.Client[bytes]
) -> None:
    from kqueue.cli.lookup import unwatched_type_warning

    producer = make_queue(lanes=1)
    assert unwatched_type_warning(producer, "x") is not None  # nobody watches the lane yet
    client.watch(lane_tube(0, "kq-"))  # a worker of another type of the lane
    assert unwatched_type_warning(producer, "x") is None


def test_held_jobs_lost_with_the_broker_come_back_through_the_lane_and_stay_held(
    make_queue: Callable[..., KQueue],
    beanstalkd: BeanstalkdProcess,
    store: MemoryStore,
) -> None:
    admin, worker = make_queue(lanes=2, bulk_store=store), make_queue(lanes=2, bulk_store=store)
    ran: list[int] = []
    worker.add_handler("held", lambda job: ran.append(job.data))
    admin.suspend("held")
    admin.add_jobs("held", [1, 2])
    assert worker.run_jobs(time_limit_ms=300) == 0  # both moved into kq-held
    beanstalkd.restart(binlog_dir=False)
    assert admin.sweep().requeued == 2  # into the lane; the suspension paused again
    assert worker.run_jobs(time_limit_ms=300) == 0, "a suspended type's job ran"
    admin.resume("held")
    assert worker.run_jobs(time_limit_ms=500) == 2
    assert sorted(ran) == [1, 2]


def test_the_hand_back_delay_doubles_with_each_release_up_to_its_cap() -> None:
    from kqueue.beanstalk.commands import JobCounts
    from kqueue.lane_gate import HAND_BACK_MAX, hand_back_delay

    delays = [hand_back_delay(JobCounts("t", n + 1, n, 0)) for n in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, 32, 32]
    assert HAND_BACK_MAX == 32
    assert hand_back_delay(None) == HAND_BACK_DELAY
