"""The operator commands, run in process against a real beanstalkd (and a SQLite store)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import greenstalk
import pytest

from kqueue import KQueue, RetryPolicy
from kqueue.config import parse_address
from kqueue.errors import ConfigurationError
from tests.cli.conftest import Result
from tests.servers import BeanstalkdProcess

Cli = Callable[..., Result]


def test_put_then_stats_json_shows_the_job(cli: Cli) -> None:
    put = cli("put", "email", '{"to": "ada"}', "--priority", "5", "--delay", "60")
    assert put.code == 0
    words = put.out.split()
    assert (words[0], words[2]) == ("id", "key")
    assert int(words[1]) >= 1
    assert len(words[3]) == 32
    stats = cli("stats", "--json")
    assert stats.code == 0
    (row,) = json.loads(stats.out)["job_types"]
    assert (row["job_type"], row["delayed"], row["ready"], row["stored"]) == ("email", 1, 0, None)


def test_stats_table_lists_every_job_type(cli: Cli) -> None:
    cli("put", "a", "1")
    cli("put", "b", "2")
    out = cli("stats").out
    assert "job_type" in out
    assert "\na " in out
    assert "\nb " in out


def test_put_with_a_payload_that_is_not_json_is_a_one_line_error(cli: Cli) -> None:
    result = cli("put", "email", "{not json")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "not JSON" in result.err


def test_store_url_that_does_not_parse_is_a_one_line_error(cli: Cli) -> None:
    result = cli("stats", store="nosuch://x")
    assert result.code == 2
    assert "unknown store URL scheme" in result.err
    assert result.err.count("\n") == 1


def test_unreachable_beanstalkd_is_exit_1_with_the_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kqueue.cli import main
    from tests.servers import free_port

    port = free_port()
    assert main(["stats", "--beanstalkd", f"127.0.0.1:{port}"]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_peek_by_id_and_by_type_show_the_payload(cli: Cli) -> None:
    job_id = cli("put", "p", '{"n": 1}').out.split()[1]
    by_id = json.loads(cli("peek", job_id).out)
    assert (by_id["payload"], by_id["state"], by_id["job_type"]) == ({"n": 1}, "ready", "p")
    by_type = json.loads(cli("peek", "p", "--state", "ready").out)
    assert by_type["id"] == int(job_id)
    missing = cli("peek", "p", "--state", "buried")
    assert missing.code == 1


def test_buried_lists_dead_letters_with_last_errors_and_kick_revives_them(
    cli: Cli, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    queue = KQueue(host=beanstalkd.host, port=beanstalkd.port, bulk_store=store)
    queue.add_handler("bad", lambda job: 1 / 0, retry=RetryPolicy(max_attempts=1))
    for i in range(3):
        queue.add_job("bad", i)
    queue.run_jobs(time_limit_ms=0)
    queue.close()
    buried = cli("buried", "bad", store=store)
    assert "3 buried job(s)" in buried.out
    assert buried.out.count("ZeroDivisionError") == 3
    kicked = cli("kick", "bad", "2", store=store)
    assert "kicked 2" in kicked.out
    stats = json.loads(cli("stats", "--json", store=store).out)["job_types"][0]
    assert (stats["ready"], stats["buried"], stats["stored"]) == (2, 1, 3)
    assert cli("buried", "bad", store=store).out.count("ZeroDivisionError") == 1
    assert "kicked 1" in cli("kick", "bad", store=store).out


def test_purge_with_yes_deletes_matching_jobs(cli: Cli) -> None:
    cli("put", "pg", '{"user": "alice"}')
    cli("put", "pg", '{"user": "bob"}')
    result = cli("purge", "pg", "--match", "alice", "--yes")
    assert "purged 1" in result.out
    (row,) = json.loads(cli("stats", "--json").out)["job_types"]
    assert row["ready"] == 1


def test_purge_refuses_to_ask_without_a_terminal(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("put", "pg", "1")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    result = cli("purge", "pg")
    assert result.code == 2
    assert "--yes" in result.err
    (row,) = json.loads(cli("stats", "--json").out)["job_types"]
    assert row["ready"] == 1


def test_suspend_and_resume_through_the_command_line(
    cli: Cli, beanstalkd: BeanstalkdProcess
) -> None:
    cli("put", "s", "1")
    assert cli("suspend", "s").code == 0
    with greenstalk.Client(beanstalkd.address) as client:
        assert client.stats_tube("kq-s")["pause"] > 0
        assert cli("resume", "s").code == 0
        assert client.stats_tube("kq-s")["pause"] == 0


def test_sweep_reports_recovered_jobs(
    cli: Cli, beanstalkd: BeanstalkdProcess, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite3"
    cli("put", "lost", "1", store=store)
    beanstalkd.restart(binlog_dir=False)
    result = cli("sweep", "--grace", "0", "--json", store=store)
    assert result.code == 0
    assert json.loads(result.out)["requeued"] == 1


def test_sweep_without_a_store_is_a_configuration_error(cli: Cli) -> None:
    result = cli("sweep")
    assert result.code == 2
    assert "bulk store" in result.err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("h:1", ("h", 1)), ("h", ("h", 11300)), ("[::1]:7", ("::1", 7)), ("[::1]", ("::1", 11300))],
)
def test_beanstalkd_address_parsing(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["h:0", "h:x", ":5", "a:b:c", "h:70000"])
def test_bad_beanstalkd_address_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_address(text)


def test_help_shows_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from kqueue.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "exit codes" in out
    assert "KQUEUE_BEANSTALKD" in out


def test_demo_runs_the_whole_story_and_loses_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kqueue.cli import main

    assert main(["demo", "--jobs", "400"]) == 0
    out = capsys.readouterr().out
    lost = next(line for line in out.splitlines() if line.startswith("lost "))
    assert lost.split()[-1] == "0"
    crashes = next(line for line in out.splitlines() if line.startswith("broker crashes"))
    assert crashes.split()[-1] == "1"


def test_sweeper_without_a_store_exits_at_once_with_a_configuration_error(cli: Cli) -> None:
    result = cli("sweeper", "--interval", "0.1")
    assert result.code == 2
    assert "bulk store" in result.err


@pytest.mark.parametrize(
    "args",
    [
        ("stats", "--watch", "-1"),
        ("sweeper", "--interval", "0"),
        ("kick", "t", "0"),
        ("buried", "t", "--limit", "-3"),
        ("worker", "x:y", "--processes", "0"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    from kqueue.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    assert "must be above 0" in capsys.readouterr().err
