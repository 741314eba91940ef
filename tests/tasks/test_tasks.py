"""Typed tasks: a decorated function is the handler of its job type and is added by calling
``add`` with its own arguments, which travel by name and are checked on both sides."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kqueue import KQueue, ValidationError
from kqueue.tasks import default_job_type


def test_a_task_runs_its_function_with_the_arguments_added(queue: KQueue) -> None:
    sent: list[tuple[str, str, int]] = []

    @queue.task("email.send")
    def send_email(to: str, subject: str, retries: int = 3) -> None:
        sent.append((to, subject, retries))

    handle = send_email.add(to="ada@example.com", subject="hi")
    send_email.add(to="bob@example.com", subject="yo", retries=1)
    assert handle.key and handle.id > 0
    assert queue.run_jobs(time_limit_ms=0) == 2
    assert sent == [("ada@example.com", "hi", 3), ("bob@example.com", "yo", 1)]
    assert "email.send" in queue.handlers


def test_calling_a_task_runs_the_function_here(queue: KQueue) -> None:
    @queue.task
    def double(n: int) -> int:
        return 2 * n

    assert double(n=21) == 42
    assert queue.run_jobs(time_limit_ms=0) == 0


def test_bare_decorators_name_the_job_type_after_the_function(queue: KQueue) -> None:
    @queue.task
    def first(a: int) -> None: ...

    @queue.task()
    def second(a: int) -> None: ...

    assert (
        first.job_type
        == f"{__name__}.test_bare_decorators_name_the_job_type_after_the_function._locals_.first"
    )
    assert second.job_type.endswith("._locals_.second")
    assert first.job_type == default_job_type(first.func)  # stable: the same every run
    first.add(a=1)
    second.add(a=2)
    assert queue.run_jobs(time_limit_ms=0) == 2


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"to": "a", "subject": "b", "cc": "c"}, {"to": "a"}],
    ids=["missing", "unexpected", "one-missing"],
)
def test_arguments_that_do_not_fit_raise_and_add_nothing(
    queue: KQueue, kwargs: dict[str, Any]
) -> None:
    @queue.task("email")
    def send_email(to: str, subject: str) -> None: ...

    with pytest.raises(ValidationError, match="nothing was added"):
        send_email.add(**kwargs)
    assert queue.store is not None and queue.store.count() == 0


def test_a_payload_that_does_not_fit_is_buried_at_once_with_the_reason(queue: KQueue) -> None:
    ran: list[str] = []

    @queue.task("email")
    def send_email(to: str, subject: str) -> None:
        ran.append(to)

    key = send_email.add(to="a", subject="b").key
    queue.add_job("email", {"to": "a", "subjet": "typo"})  # written by hand, or an old version
    queue.add_job("email", ["a", "b"])
    queue.run_jobs(time_limit_ms=0)
    assert ran == ["a"]
    assert queue.stats().job_types["email"]["current-jobs-buried"] == 2
    assert queue.store is not None
    buried = [r for r in queue.store.scan() if r.key != key]
    assert [r.attempts for r in buried] == [1, 1]  # never retried
    reasons = sorted(queue.job_failures(r.key)[-1].message for r in buried)
    assert "do not fit" in reasons[0] and "subjet" in reasons[0]
    assert "not an object of arguments" in reasons[1]


def test_task_functions_take_arguments_by_name_only(queue: KQueue) -> None:
    with pytest.raises(ValidationError, match="positionally"):

        @queue.task
        def positional(a: int, /) -> None: ...

    with pytest.raises(ValidationError, match="delay"):

        @queue.task
        def clash(delay: int) -> None: ...


def test_extra_keyword_arguments_travel_by_name(queue: KQueue) -> None:
    seen: list[dict[str, Any]] = []

    @queue.task("tagged")
    def tagged(name: str, **tags: Any) -> None:
        seen.append({"name": name, **tags})

    tagged.add(name="x", colour="red", size=3)
    queue.run_jobs(time_limit_ms=0)
    assert seen == [{"name": "x", "colour": "red", "size": 3}]


def test_delay_and_at_hold_the_job_back(queue: KQueue) -> None:
    @queue.task("later")
    def later(n: int) -> None: ...

    in_a_minute = later.add(n=1, delay=60)
    tomorrow = later.add(n=2, at=datetime.now(timezone.utc) + timedelta(days=1))
    by_timedelta = later.add(n=3, delay=timedelta(minutes=5))
    assert [h.status() for h in (in_a_minute, tomorrow, by_timedelta)] == ["delayed"] * 3
    assert queue.stats().job_types["later"]["current-jobs-delayed"] == 3
    with pytest.raises(ValidationError, match="not both"):
        later.add(n=4, delay=5, at=datetime.now(timezone.utc))
    with pytest.raises(ValidationError):
        later.add(n=5, delay=-1)
    assert queue.run_jobs(time_limit_ms=0) == 0


def test_add_many_adds_one_job_per_mapping_or_none(queue: KQueue) -> None:
    got: list[int] = []

    @queue.task("sum")
    def add_up(a: int, b: int) -> None:
        got.append(a + b)

    handles = add_up.add_many([{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    assert len({h.key for h in handles}) == 2 and all(h.id > 0 for h in handles)
    with pytest.raises(ValidationError, match="call 1"):
        add_up.add_many([{"a": 1, "b": 2}, {"a": 1}])
    one_mapping: Any = {"a": 1, "b": 2}
    with pytest.raises(ValidationError):
        add_up.add_many(one_mapping)  # one mapping, not an iterable of them
    queue.run_jobs(time_limit_ms=0)
    assert got == [3, 7]


def test_add_job_still_returns_the_beanstalkd_id(queue: KQueue) -> None:
    job_id = queue.add_job("plain", {"a": 1})
    assert isinstance(job_id, int) and job_id > 0


def test_positional_arguments_to_add_are_refused_with_the_reason(queue: KQueue) -> None:
    @queue.task("email")
    def send_email(to: str, subject: str) -> None: ...

    loose: Any = send_email.add
    with pytest.raises(ValidationError, match="by name"):
        loose("ada@example.com", "hi")


def test_a_queue_moved_to_other_settings_keeps_its_tasks_results(queue: KQueue) -> None:
    @queue.task("kept", keep_result=60)
    def kept() -> int:
        return 1

    moved = queue.with_config(queue.config)
    try:
        assert moved.handlers["kept"].keep_result == 60
        handle = kept.add()
        assert moved.run_jobs(time_limit_ms=0) == 1
        assert handle.result(timeout=0) == 1
    finally:
        moved.close()


def test_a_unique_key_on_a_task_adds_once_and_hands_back_the_holders_job(queue: KQueue) -> None:
    sent: list[str] = []

    @queue.task("email.unique")
    def send_email(to: str) -> None:
        sent.append(to)

    first = send_email.add(to="ada@example.com", unique_key="welcome:ada")
    again = send_email.add(to="ada@example.com", unique_key="welcome:ada")
    other = send_email.add(to="bob@example.com", unique_key="welcome:bob")
    assert (again.key, again.id) == (first.key, first.id)  # the job holding the key
    assert other.key != first.key
    assert queue.run_jobs(time_limit_ms=0) == 2
    assert sorted(sent) == ["ada@example.com", "bob@example.com"]
    assert send_email.add(to="ada@example.com", unique_key="welcome:ada").key != first.key


def test_task_parameters_may_not_take_the_names_add_keeps_for_itself(queue: KQueue) -> None:
    with pytest.raises(ValidationError, match="unique_key"):

        @queue.task("clash")
        def clash(unique_key: str) -> None: ...
