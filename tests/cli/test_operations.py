"""Operating an application's queue as the operator meets it: the application target, the
store's side of stats after a broker crash, job identity, warnings, and quiet logs.

Real beanstalkd and Redis; the application (tests/cli/prefixed_app.py) has its own key
prefix and tube prefix, like one in the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import greenstalk
import pytest

from kqueue import KQueue
from kqueue.cli import main
from kqueue.cli.logs import parse_levels, setup_logging
from kqueue.errors import ConfigurationError
from kqueue.stores.redis import RedisStore
from kqueue.stores.registry import open_store, with_prefix
from kqueue.stores.sql import SQLStore
from kqueue.stores.url import split_prefix
from tests.cli.conftest import Result
from tests.cli.prefixed_app import make_queue
from tests.servers import BeanstalkdProcess

APP = "tests.cli.prefixed_app:make_queue"
Cli = Callable[..., Result]


@pytest.fixture
def kq(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``kqueue ARGS`` in this process, with nothing added (the app says where to go)."""

    def run(*args: str) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def app_env(
    beanstalkd: BeanstalkdProcess,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The environment tests/cli/prefixed_app.py reads; yields its store URL with prefix."""
    monkeypatch.setenv("KQ_TEST_BEANSTALKD", _address(beanstalkd))
    monkeypatch.setenv("KQ_TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("KQ_TEST_REDIS_PREFIX", redis_prefix)
    for name in ("KQUEUE_APP", "KQUEUE_STORE", "KQUEUE_STORE_PREFIX", "KQUEUE_BEANSTALKD"):
        monkeypatch.delenv(name, raising=False)
    yield f"{redis_url}?prefix={redis_prefix}"


def _address(beanstalkd: BeanstalkdProcess) -> str:
    return f"{beanstalkd.host}:{beanstalkd.port}"


def _crash_with_backlog(beanstalkd: BeanstalkdProcess, lost: int) -> None:
    """``lost`` jobs put, the broker restarted empty, then one job accepted while it was
    down (add_job returns 0): the state after a broker crash."""
    with make_queue() as queue:
        queue.add_jobs("email.send", [{"n": n} for n in range(lost)])
    beanstalkd.restart(binlog_dir=False)
    beanstalkd.kill()
    queue = make_queue()
    try:
        assert queue.add_job("email.send", {"n": "while down"}) == 0
    finally:
        queue.close()
        beanstalkd.start()


def _row(result: Result) -> dict[str, object]:
    assert result.code == 0, result.err
    (row,) = json.loads(result.out)["job_types"]
    assert isinstance(row, dict)
    return row


def test_after_a_broker_crash_stats_of_the_app_show_what_awaits_recovery(
    kq: Cli, app_env: str, beanstalkd: BeanstalkdProcess
) -> None:
    _crash_with_backlog(beanstalkd, lost=30)
    row = _row(kq("stats", APP, "--json"))
    assert row["job_type"] == "email.send"
    assert (row["ready"], row["stored"]) == (0, 31)
    assert (row["awaiting_recovery"], row["unscheduled"], row["dead_letters"]) == (30, 1, 0)
    # The same through a store URL that carries the key prefix, and the app's tube prefix.
    by_url = kq(
        "stats", "--json", "--store", app_env, "--prefix", "myapp-",
        "--beanstalkd", _address(beanstalkd),
    )  # fmt: skip
    by_url_row = _row(by_url)
    assert by_url_row["awaiting_recovery"] == 30
    table = kq("stats", APP)
    assert "awaiting_recovery" in table.out
    assert "31 stored job(s) are not in beanstalkd" in table.out


def test_a_sweep_right_after_the_crash_explains_why_it_put_nothing_back_then_grace_0_does(
    kq: Cli, app_env: str, beanstalkd: BeanstalkdProcess
) -> None:
    _crash_with_backlog(beanstalkd, lost=5)
    # The 5 jobs the restarted broker lost go back at once, whatever their age; the one
    # accepted while it was down is left to its producer for the grace period.
    first = kq("sweep", APP, "--json")
    assert first.code == 0
    assert (json.loads(first.out)["young"], json.loads(first.out)["requeued"]) == (1, 5)
    young = kq("sweep", APP, "--json")
    report = json.loads(young.out)
    assert (report["young"], report["requeued"]) == (1, 0)
    assert "accepted less than 30 s ago and not yet in beanstalkd" in young.err
    assert "--grace 0" in young.err
    now = kq("sweep", APP, "--grace", "0", "--json")
    assert json.loads(now.out)["requeued"] == 1
    row = _row(kq("stats", APP, "--json"))
    assert (row["ready"], row["awaiting_recovery"], row["unscheduled"]) == (6, 0, 0)


def test_a_store_prefix_with_nothing_says_where_the_records_are(
    kq: Cli, app_env: str, redis_url: str, redis_prefix: str, beanstalkd: BeanstalkdProcess
) -> None:
    with make_queue() as queue:
        queue.add_job("email.send", {"n": 1})
    empty_prefix = f"{redis_prefix}nothing:"
    args = ("--beanstalkd", _address(beanstalkd), "--store", f"{redis_url}?prefix={empty_prefix}")
    stats = kq("stats", *args)
    assert stats.code == 0
    assert "no job types yet" in stats.out
    assert repr(redis_prefix) in stats.err
    sweep = kq("sweep", *args)
    assert sweep.code == 0
    assert repr(redis_prefix) in sweep.err
    # The application's tubes are in beanstalkd: still, the empty store is pointed out.
    with_tubes = kq("stats", *args, "--prefix", "myapp-")
    assert "email.send" in with_tubes.out
    assert repr(redis_prefix) in with_tubes.err


def test_the_prefix_hint_names_a_store_with_unique_jobs_once(
    kq: Cli, app_env: str, redis_url: str, redis_prefix: str, beanstalkd: BeanstalkdProcess
) -> None:
    # Unique jobs add a second sorted set, <prefix>qidx, beside the record index <prefix>idx.
    with make_queue() as queue:
        queue.add_job("email.send", {"n": 1}, unique_key="welcome-1")
    empty = f"{redis_url}?prefix={redis_prefix}nothing:"
    stats = kq("stats", "--beanstalkd", _address(beanstalkd), "--store", empty)
    assert repr(redis_prefix) in stats.err
    assert repr(f"{redis_prefix}q") not in stats.err


def test_the_key_prefix_comes_from_the_environment_too(
    kq: Cli,
    app_env: str,
    redis_url: str,
    redis_prefix: str,
    beanstalkd: BeanstalkdProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with make_queue() as queue:
        queue.add_job("email.send", {"n": 1})
    monkeypatch.setenv("KQUEUE_STORE", redis_url)
    monkeypatch.setenv("KQUEUE_STORE_PREFIX", redis_prefix)
    monkeypatch.setenv("KQUEUE_PREFIX", "myapp-")
    row = _row(kq("stats", "--json", "--beanstalkd", _address(beanstalkd)))
    assert (row["ready"], row["stored"]) == (1, 1)


def test_two_different_key_prefixes_are_refused_and_nothing_runs(
    kq: Cli, app_env: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KQUEUE_STORE_PREFIX", "other:")
    result = kq("stats", "--store", app_env)
    assert result.code == 2
    assert "two key prefixes" in result.err
    assert result.err.count("\n") == 1


def test_store_url_prefix_is_kqueues_and_never_reaches_the_driver(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    assert split_prefix("redis://h/0?db=1&prefix=a%3Ab#x") == ("redis://h/0?db=1#x", "a:b")
    assert split_prefix("redis://h/0") == ("redis://h/0", None)
    store = open_store(f"{redis_url}?prefix={redis_prefix}")
    assert isinstance(store, RedisStore)
    assert store.prefix == redis_prefix
    assert "prefix" not in store.client.connection_pool.connection_kwargs
    store.close()
    sql = open_store(f"sqlite:///{tmp_path}/s.db?prefix=myapp_")
    assert isinstance(sql, SQLStore)
    assert sql.tables.records.name == "myapp_records"
    sql.close()
    with pytest.raises(ConfigurationError):
        split_prefix("redis://h/0?prefix=")
    with pytest.raises(ConfigurationError):
        with_prefix("redis://h/0?prefix=a:", "b:")
    with pytest.raises(ConfigurationError):
        with_prefix("memory://", "b:")


def test_peek_by_record_key_and_by_id_show_both_names(kq: Cli, app_env: str) -> None:
    put = kq("put", APP, "email.send", '{"to": "ada"}')
    assert put.code == 0
    _, job_id, _, key = put.out.split()
    by_key = json.loads(kq("peek", APP, key).out)
    by_id = json.loads(kq("peek", APP, job_id).out)
    for shown in (by_key, by_id):
        assert (shown["id"], shown["key"]) == (int(job_id), key)
        assert (shown["state"], shown["payload"]) == ("ready", {"to": "ada"})
    missing = kq("peek", APP, "0" * 32)
    assert missing.code == 1
    assert "no record" in missing.err


def test_peek_by_key_of_a_lost_job_says_it_awaits_recovery(
    kq: Cli, app_env: str, beanstalkd: BeanstalkdProcess
) -> None:
    key = kq("put", APP, "email.send", '{"to": "ada"}').out.split()[3]
    beanstalkd.restart(binlog_dir=False)
    shown = json.loads(kq("peek", APP, key).out)
    assert shown["id"] is None
    assert "awaiting recovery" in shown["state"]


def test_buried_lists_record_keys_with_their_beanstalkd_ids(kq: Cli, app_env: str) -> None:
    with make_queue() as queue:
        queue.add_handler("bad", lambda job: 1 / 0)
        ids = queue.add_jobs("bad", [1, 2])
        queue.run_jobs(time_limit_ms=0)
    out = kq("buried", APP, "bad").out
    assert "2 buried job(s)" in out
    for job_id in ids:
        assert f" {job_id} " in out
    assert out.count("ZeroDivisionError") == 2


def test_named_priorities_are_taken_and_bad_ones_refused(
    cli: Cli, beanstalkd: BeanstalkdProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = int(cli("put", "p", "1", "--priority", "high").out.split()[1])
    with greenstalk.Client(beanstalkd.address) as client:
        assert client.stats_job(job_id)["pri"] == KQueue.PRIO_HIGH
    with pytest.raises(SystemExit) as exit_info:
        main(["put", "p", "1", "--priority", "hihg"])
    assert exit_info.value.code == 2
    assert "urgent, high, normal, low, bulk" in capsys.readouterr().err


def test_put_and_suspend_warn_about_a_job_type_nobody_knows_but_do_it(
    cli: Cli, beanstalkd: BeanstalkdProcess
) -> None:
    put = cli("put", "nosuchtype", "1")
    assert put.code == 0
    assert "no worker watches job type 'nosuchtype'" in put.err
    assert "warning: no worker" not in cli("put", "nosuchtype", "2").err  # a known tube now
    suspend = cli("suspend", "neverseen")
    assert suspend.code == 0
    assert "neverseen" in suspend.err
    assert suspend.out == "suspended neverseen\n"
    with greenstalk.Client(beanstalkd.address, watch="kq-watched"):
        assert "warning" not in cli("put", "watched", "1").err


def test_bulk_put_from_a_file_adds_every_line(cli: Cli, tmp_path: Path) -> None:
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(2500)))
    result = cli("put", "bulk", "--file", str(payloads), "--priority", "bulk")
    assert result.code == 0
    assert "added 2500 job(s)" in result.out
    (row,) = json.loads(cli("stats", "--json").out)["job_types"]
    assert row["ready"] == 2500
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n": 1}\n{oops\n')
    refused = cli("put", "bulk2", "--file", str(bad))
    assert refused.code == 2
    assert "line 2" in refused.err
    assert [r["job_type"] for r in json.loads(cli("stats", "--json").out)["job_types"]] == ["bulk"]


def test_purge_warns_about_a_spaced_json_pattern_and_the_compact_one_matches(cli: Cli) -> None:
    cli("put", "mail", '{"to": "spam@example.com"}')
    cli("put", "mail", '{"to": "ada@example.com"}')
    spaced = cli("purge", "mail", "--match", '"to": "spam@', "--yes")
    assert "purged 0" in spaced.out
    assert "compact JSON" in spaced.err
    compact = cli("purge", "mail", "--match", '"to":"spam@', "--yes")
    assert "purged 1" in compact.out
    assert compact.err == ""


def test_a_sweep_logs_one_summary_line_not_one_per_job(
    cli: Cli, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store)
    queue.add_jobs("lost", list(range(40)))
    queue.close()
    beanstalkd.restart(binlog_dir=False)
    result = cli("sweep", "--grace", "0", "--json", "--log-level", "INFO", store=store)
    assert json.loads(result.out)["requeued"] == 40
    lines = result.err.splitlines()
    assert len(lines) == 1, lines
    assert "recovery pass: scanned 40" in lines[0]
    assert "requeued 40" in lines[0]
    assert "SweepReport(" not in result.err


def test_worker_json_logs_carry_job_fields_and_the_stop_line_counts_jobs(
    kq: Cli, beanstalkd: BeanstalkdProcess, out_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KQ_TEST_OUT", str(out_file))
    address = ("--beanstalkd", _address(beanstalkd))
    for n in range(3):
        assert kq("put", "flaky", json.dumps({"n": n}), *address).code == 0
    worker = kq(
        "worker", "tests.cli.app:retrying", "--burst", "--log-json", "--log-level", "DEBUG",
        *address,
    )  # fmt: skip
    assert worker.code == 0
    records = [json.loads(line) for line in worker.err.splitlines()]
    done = [r for r in records if r.get("outcome") == "completed"]
    assert len(done) == 3
    assert {"job_type", "key", "job_id", "attempt", "duration_ms"} <= set(done[0])
    assert {r["attempt"] for r in done} == {2}
    (stopped,) = [r["message"] for r in records if r["message"].startswith("worker stopped")]
    assert stopped.startswith("worker stopped after 3 job(s) (3 completed, 0 buried; 6 handler")
    assert all(r["logger"].split(".")[0] == "kqueue" for r in records)  # no driver noise


def test_other_libraries_stay_at_warning_unless_named() -> None:
    setup_logging("DEBUG", json_lines=False)
    assert logging.getLogger("kqueue").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("redis").getEffectiveLevel() == logging.WARNING
    setup_logging("INFO,redis=DEBUG", json_lines=False)
    assert logging.getLogger("redis").getEffectiveLevel() == logging.DEBUG
    logging.getLogger("redis").setLevel(logging.NOTSET)
    assert parse_levels("warning,sqlalchemy.engine=info") == {
        "kqueue": logging.WARNING,
        "sqlalchemy.engine": logging.INFO,
    }
    with pytest.raises(ConfigurationError):
        parse_levels("LOUD")


def test_an_empty_sql_store_names_the_table_prefixes_holding_records(
    cli: Cli, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    assert cli("put", "report.build", "1", store=f"{url}?prefix=myapp_").code == 0
    plain = cli("sweep", store=url)
    assert plain.code == 0
    assert "'myapp_'" in plain.err
    row = _row(cli("stats", "--json", store=f"{url}?prefix=myapp_"))
    assert (row["stored"], row["ready"]) == (1, 1)


def test_the_application_comes_from_app_or_kqueue_app_too(
    kq: Cli, app_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_queue() as queue:
        queue.add_job("email.send", {"n": 1})
    assert _row(kq("stats", "--app", APP, "--json"))["stored"] == 1
    monkeypatch.setenv("KQUEUE_APP", APP)
    assert _row(kq("stats", "--json"))["stored"] == 1
    missing = kq("stats", "--app", "tests.cli.nosuchmodule:queue")
    assert missing.code == 2
    assert "cannot import" in missing.err


def test_stats_after_a_binlog_restart_count_the_restored_jobs_as_in_beanstalkd(
    beanstalkd_binlog: BeanstalkdProcess, tmp_path: Path
) -> None:
    # The restarted server has a new id, so the records name a server that is gone; the
    # jobs are back from the binlog all the same, and none awaits recovery.
    broker = beanstalkd_binlog
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    with KQueue(host=broker.host, port=broker.port, bulk_store=store) as queue:
        queue.add_jobs("kept", [1, 2, 3])
        before = queue.stats().server["id"]
    broker.restart()
    with KQueue(host=broker.host, port=broker.port, bulk_store=store) as queue:
        snapshot = queue.stats()
    assert snapshot.server["id"] != before
    assert snapshot.store is not None
    counts = snapshot.store["kept"]
    assert (counts.records, counts.awaiting_recovery, counts.unscheduled) == (3, 0, 0)
    assert snapshot.job_types["kept"]["current-jobs-ready"] == 3


def test_put_while_beanstalkd_is_down_is_accepted_and_shows_its_key(
    kq: Cli, app_env: str, beanstalkd: BeanstalkdProcess
) -> None:
    beanstalkd.kill()
    try:
        put = kq("put", APP, "email.send", '{"to": "ada"}')
    finally:
        beanstalkd.start()
    assert put.code == 0, put.err
    words = put.out.split()
    assert (words[:3], len(words[3])) == (["id", "0", "key"], 32)
    explained = [line for line in put.err.splitlines() if "sweeper" in line]
    assert len(explained) == 1, put.err  # said once (the producer's warning), not twice
    shown = json.loads(kq("peek", APP, words[3]).out)
    assert (shown["key"], shown["payload"]) == (words[3], {"to": "ada"})
    assert shown["state"].startswith("accepted, not yet in beanstalkd")
    assert _row(kq("stats", APP, "--json"))["unscheduled"] == 1


def test_a_misspelt_store_url_parameter_is_a_one_line_usage_error(
    cli: Cli, redis_url: str, redis_prefix: str
) -> None:
    result = cli("stats", store=f"{redis_url}?prefx={redis_prefix}")
    assert result.code == 2
    assert "prefx" in result.err
    assert result.err.count("\n") == 1
    fine = cli("stats", store=f"{redis_url}?socket_timeout=5&prefix={redis_prefix}")
    assert fine.code == 0, fine.err
