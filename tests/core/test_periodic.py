"""Periodic jobs with an injected clock: cron ticks in time zones, one job per tick, and the
policy for ticks missed while no scheduler ran. No test sleeps through real minutes: each
calls Scheduler.run_pending with the time it pretends it is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import greenstalk
import pytest

from kqueue import KQueue, Schedule, Scheduler, ValidationError
from kqueue.errors import ConfigurationError, InvalidJobTypeError
from kqueue.stores import MemoryStore
from tests.core.conftest import tube_stats


def at(text: str, tz: str = "UTC") -> float:
    """Unix seconds of an ISO local time in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def periodic_queue(make_queue: Callable[..., KQueue], store: MemoryStore) -> KQueue:
    queue: KQueue = make_queue(bulk_store=store)
    return queue


def waiting(client: greenstalk.Client[bytes], job_type: str) -> int:
    stats = tube_stats(client, f"kq-{job_type}")
    return stats["current-jobs-ready"] + stats["current-jobs-delayed"]


def test_ticks_follow_the_schedules_time_zone_across_daylight_saving() -> None:
    schedule = Schedule.create("report", "30 3 * * *", tz="Europe/Riga")
    ticks = schedule.ticks_between(at("2026-03-28 00:00", "Europe/Riga"), at("2026-03-31 00:00"))
    # 03:30 does not exist on 29 March in Riga (clocks go 03:00 -> 04:00): cron runs it at 04:00
    assert [utc(tick) for tick in ticks] == [
        "2026-03-28 01:30",  # UTC+2
        "2026-03-29 01:00",  # 04:00 UTC+3
        "2026-03-30 00:30",  # UTC+3
    ]
    assert schedule.latest_tick(ticks[1]) == ticks[1]
    assert schedule.next_tick(ticks[1]) == ticks[2]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"cron": "61 * * * *"}, "bad cron expression"),
        ({"cron": "every day"}, "bad cron expression"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"missed": "all"}, "missed must be"),
        ({"name": "has space"}, "schedule name"),
    ],
)
def test_a_bad_schedule_is_refused_and_nothing_is_declared(
    periodic_queue: KQueue, arguments: dict[str, str], error: str
) -> None:
    options = {"cron": "0 * * * *", **arguments}
    cron = options.pop("cron")
    with pytest.raises(ValidationError, match=error):
        periodic_queue.add_periodic("report", cron, **options)  # type: ignore[arg-type]
    assert periodic_queue.periodic == {}


def test_a_bad_job_type_a_second_name_or_a_bad_payload_is_refused(periodic_queue: KQueue) -> None:
    with pytest.raises(InvalidJobTypeError):
        periodic_queue.add_periodic("bad type", "0 * * * *")
    periodic_queue.add_periodic("report", "0 * * * *")
    with pytest.raises(ValidationError, match="exists already"):
        periodic_queue.add_periodic("report", "30 * * * *")
    with pytest.raises(ValidationError):
        periodic_queue.add_periodic("other", "0 * * * *", payload=object())
    assert list(periodic_queue.periodic) == ["report"]


def test_an_on_time_tick_adds_one_job_and_a_second_look_adds_none(
    periodic_queue: KQueue, client: greenstalk.Client[bytes], store: MemoryStore
) -> None:
    periodic_queue.add_periodic("report", "*/15 * * * *", payload={"kind": "quarter"})
    scheduler = Scheduler(periodic_queue)
    fired = scheduler.run_pending(at("2026-05-01 12:00:00.5"))
    assert [(f.schedule, utc(f.tick)) for f in fired] == [("report", "2026-05-01 12:00")]
    assert scheduler.run_pending(at("2026-05-01 12:00:20")) == []
    assert scheduler.run_pending(at("2026-05-01 12:14:59")) == []
    assert [utc(f.tick) for f in scheduler.run_pending(at("2026-05-01 12:15:02"))] == [
        "2026-05-01 12:15"
    ]
    assert waiting(client, "report") == 2
    assert [r.payload for r in store.scan()] == [b'{"kind":"quarter"}'] * 2


def test_schedulers_started_within_the_grace_find_the_tick_added(
    periodic_queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    periodic_queue.add_periodic("report", "0 * * * *")
    first = Scheduler(periodic_queue).run_pending(at("2026-05-01 12:00:01"))
    again = Scheduler(periodic_queue).run_pending(at("2026-05-01 12:00:40"))
    assert [f.tick for f in first] == [f.tick for f in again]
    assert first[0].job_id == again[0].job_id != 0
    assert waiting(client, "report") == 1


def test_skip_leaves_ticks_missed_while_no_scheduler_ran(
    periodic_queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    periodic_queue.add_periodic("report", "0 * * * *", missed="skip")
    scheduler = Scheduler(periodic_queue, grace=60)
    assert scheduler.run_pending(at("2026-05-01 12:07")) == []  # 12:00 is 7 minutes old
    assert scheduler.run_pending(at("2026-05-01 15:05")) == []  # paused through 13, 14, 15
    assert len(scheduler.run_pending(at("2026-05-01 16:00:03"))) == 1
    assert waiting(client, "report") == 1


def test_run_once_runs_the_latest_missed_tick_once_however_many_passed(
    periodic_queue: KQueue, client: greenstalk.Client[bytes]
) -> None:
    periodic_queue.add_periodic("report", "0 * * * *", missed="run_once")
    scheduler = Scheduler(periodic_queue, grace=60)
    started = scheduler.run_pending(at("2026-05-01 12:07"))  # down since yesterday
    assert [utc(f.tick) for f in started] == ["2026-05-01 12:00"]
    # another scheduler starting later in the same hour finds that tick's job: none added
    late = Scheduler(periodic_queue, grace=60).run_pending(at("2026-05-01 12:50"))
    assert [f.job_id for f in late] == [started[0].job_id]
    assert scheduler.run_pending(at("2026-05-01 12:30")) == []
    paused = scheduler.run_pending(at("2026-05-01 15:05"))  # 13, 14 and 15 missed
    assert [utc(f.tick) for f in paused] == ["2026-05-01 15:00"]
    assert waiting(client, "report") == 2


def test_a_schedule_in_another_time_zone_ticks_at_its_local_time(
    periodic_queue: KQueue,
) -> None:
    periodic_queue.add_periodic("report", "0 9 * * 1-5", tz="America/New_York")
    scheduler = Scheduler(periodic_queue)
    assert scheduler.run_pending(at("2026-01-05 09:00:00", "UTC")) == []
    fired = scheduler.run_pending(at("2026-01-05 14:00:01", "UTC"))  # 09:00 EST, a Monday
    assert [utc(f.tick) for f in fired] == ["2026-01-05 14:00"]
    assert scheduler.next_look(at("2026-01-05 14:00:01")) == at("2026-01-05 14:00:31")


def test_the_next_look_is_the_next_tick_when_it_comes_first(periodic_queue: KQueue) -> None:
    periodic_queue.add_periodic("a", "*/5 * * * *")
    periodic_queue.add_periodic("b", "2 * * * *")
    scheduler = Scheduler(periodic_queue)
    assert scheduler.next_look(at("2026-05-01 12:01:50")) == at("2026-05-01 12:02")


def test_periodic_jobs_need_a_store(make_queue: Callable[..., KQueue]) -> None:
    from kqueue.cli.scheduler_command import check_schedules

    inline = make_queue()
    inline.add_periodic("report", "0 * * * *")
    with pytest.raises(ConfigurationError, match="bulk store"):
        check_schedules(inline)
    with pytest.raises(ConfigurationError, match="no periodic jobs"):
        check_schedules(make_queue(bulk_store=MemoryStore()))


def test_the_schedules_go_with_the_application_to_other_settings(periodic_queue: KQueue) -> None:
    import dataclasses

    schedule = periodic_queue.add_periodic("report", "0 * * * *", tz="Asia/Tokyo")
    moved = periodic_queue.with_config(dataclasses.replace(periodic_queue.config, port=1))
    assert moved.periodic == {"report": schedule}
