"""The dashboard's pages and actions in process (Starlette's TestClient) against a real
beanstalkd and a SQLite store: what the pages show matches the broker, actions do what they
say and nothing without their CSRF token, and payload markup is only ever text."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import greenstalk
import pytest

from kqueue import KQueue
from kqueue.cli import main
from kqueue.dashboard.security import check_bind
from kqueue.dashboard.views import PAYLOAD_SHOWN, SCAN_LIMIT, dead_letters, overview
from kqueue.errors import ConfigurationError
from tests.dashboard.conftest import Web, bury, counts_of
from tests.servers import BeanstalkdProcess


def tube_stats(client: greenstalk.Client[bytes], job_type: str) -> dict[str, Any]:
    return dict(client.stats_tube(f"kq-{job_type}"))


def test_overview_counts_match_beanstalkd_and_store(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes]
) -> None:
    store_queue.add_jobs("email", [{"n": n} for n in range(3)])
    store_queue.add_job("email", {"later": True}, delay=600)
    bury(store_queue, "report", [{"r": 1}, {"r": 2}])
    store_queue.add_job("report", {"r": 3})
    client.watch("kq-report")
    held = client.reserve(timeout=2)  # one reserved by a "worker"
    page = web.get("/")
    assert page.status_code == 200
    for job_type in ("email", "report"):
        shown = counts_of(page.text, job_type)
        tube = tube_stats(client, job_type)
        for column in ("ready", "delayed", "reserved", "buried"):
            assert shown[column] == str(tube[f"current-jobs-{column}"]), (job_type, column)
        assert shown["stored"] == str(store_queue.store.count(job_type))  # type: ignore[union-attr]
    assert counts_of(page.text, "email")["ready"] == "3"
    assert counts_of(page.text, "report")["buried"] == "2"
    assert counts_of(page.text, "report")["reserved"] == "1"
    assert counts_of(page.text, "report")["dead_letters"] == "2"
    client.release(held)


def test_overview_shows_jobs_awaiting_recovery_after_a_broker_restart(
    store_queue: KQueue, web: Web, beanstalkd: BeanstalkdProcess
) -> None:
    store_queue.add_jobs("email", [{"n": 1}, {"n": 2}])
    beanstalkd.kill()
    beanstalkd.start()  # without a binlog: empty, the tube gone
    row = counts_of(web.get("/").text, "email")
    assert (row["ready"], row["stored"], row["awaiting_recovery"]) == ("0", "2", "2")


def test_a_recovery_pass_from_the_dashboard_puts_lost_jobs_back(
    store_queue: KQueue, web: Web, beanstalkd: BeanstalkdProcess
) -> None:
    store_queue.add_jobs("email", [{"n": 1}, {"n": 2}])
    beanstalkd.kill()
    beanstalkd.start()  # empty: both jobs lost, their records kept
    answer = web.post("sweep")
    assert answer.status_code == 303
    assert "recovery+pass" in answer.headers["location"]
    with greenstalk.Client(beanstalkd.address, encoding=None) as fresh:
        assert fresh.stats_tube("kq-email")["current-jobs-ready"] == 2


def test_the_overview_lists_the_passes_every_sweeper_reported(
    store_queue: KQueue,
    make_queue: Callable[..., KQueue],
    web: Web,
    beanstalkd: BeanstalkdProcess,
) -> None:
    assert "no sweeper has reported yet" in web.get("/").text
    store_queue.add_jobs("email", [{"n": 1}, {"n": 2}])
    beanstalkd.kill()
    beanstalkd.start()  # empty: both jobs lost
    elsewhere = make_queue(bulk_store=store_queue.store)  # another process's sweeper, say
    assert elsewhere.sweep().requeued == 2
    store_queue.sweep()
    page = web.get("/")
    section = page.text[page.text.index('id="sweeps"') :]
    rows = section[: section.index("</table>")].count("<tr>") - 1  # less the header
    assert rows == 2
    assert "recovery pass: scanned 2" in section and f":{os.getpid()}<" in section
    assert [entry["requeued"] for entry in store_queue.admin.recent_sweeps()] == [0, 2]


def test_live_fragment_holds_the_same_table(store_queue: KQueue, web: Web) -> None:
    store_queue.add_job("email", {"n": 1})
    fragment = web.get("/fragment/overview")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert counts_of(fragment.text, "email")["ready"] == "1"


def test_overview_pages_its_job_types(store_queue: KQueue) -> None:
    for n in range(5):
        store_queue.add_job(f"type{n}", {"n": n})
    first = overview(store_queue, page=1, per_page=2)
    last = overview(store_queue, page=3, per_page=2)
    assert (first.pages, first.total_types) == (3, 5)
    assert [row.job_type for row in first.rows] == ["type0", "type1"]
    assert [row.job_type for row in last.rows] == ["type4"]


def test_dead_letters_show_payload_escaped_pretty_and_cut(store_queue: KQueue, web: Web) -> None:
    hostile = {"html": "<script>document.title='owned'</script>", "img": "<img src=x onerror=1>"}
    big = {"blob": "x" * (PAYLOAD_SHOWN + 500)}
    bury(store_queue, "email", [hostile, big])
    page = web.get("/type", name="email")
    assert page.status_code == 200
    assert "<script>document" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;document.title=" in page.text
    assert "&lt;img src=x onerror=1&gt;" in page.text
    assert "&#34;html&#34;: " in page.text  # pretty-printed JSON: one key a line
    assert "not shown" in page.text  # the big payload is cut
    assert "RuntimeError" in page.text or "cannot handle job of email" in page.text


def test_dead_letters_come_a_page_at_a_time_and_a_page_reads_a_bounded_number(
    store_queue: KQueue,
) -> None:
    first_keys = bury(store_queue, "email", [{"n": n} for n in range(3)])
    store_queue.add_jobs("email", [{"filler": n} for n in range(SCAN_LIMIT + 200)], delay=3600)
    (last_key,) = bury(store_queue, "email", [{"n": "last"}])
    page = dead_letters(store_queue, "email", None, 2)
    assert [job.key for job in page.jobs] == sorted(first_keys)[:2]
    page = dead_letters(store_queue, "email", page.next_after, 2)
    assert [job.key for job in page.jobs] == sorted(first_keys)[2:]
    assert page.next_after is not None and page.scanned <= SCAN_LIMIT + 500
    page = dead_letters(store_queue, "email", page.next_after, 2)
    assert [job.key for job in page.jobs] == [last_key]
    assert page.next_after is None


def test_kick_one_sends_that_job_back_with_a_fresh_budget(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes]
) -> None:
    first, second = bury(store_queue, "email", [{"n": 1}, {"n": 2}])
    answer = web.post("kick", target=second, back="/type?name=email")
    assert answer.status_code == 303
    assert "kicked+job" in answer.headers["location"]
    tube = tube_stats(client, "email")
    assert (tube["current-jobs-ready"], tube["current-jobs-buried"]) == (1, 1)
    record = store_queue.store.get(second)  # type: ignore[union-attr]
    assert record is not None and record.attempts == 0 and record.state == "enqueued"
    assert store_queue.store.get(first).state == "buried"  # type: ignore[union-attr]


def test_kick_all_and_delete_one(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes]
) -> None:
    keys = bury(store_queue, "email", [{"n": n} for n in range(3)])
    assert web.post("delete", target=keys[0]).status_code == 303
    assert store_queue.store.get(keys[0]) is None  # type: ignore[union-attr]
    assert tube_stats(client, "email")["current-jobs-buried"] == 2
    assert web.post("kick-all", job_type="email").status_code == 303
    tube = tube_stats(client, "email")
    assert (tube["current-jobs-ready"], tube["current-jobs-buried"]) == (2, 0)


def test_delete_leaves_a_job_that_is_not_buried(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes]
) -> None:
    job_id = store_queue.add_job("email", {"n": 1})
    answer = web.post("delete", target=str(job_id))
    assert answer.status_code == 400
    assert "not buried" in answer.text
    assert tube_stats(client, "email")["current-jobs-ready"] == 1


def test_suspend_and_resume(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes]
) -> None:
    store_queue.add_job("email", {"n": 1})
    assert web.post("suspend", job_type="email").status_code == 303
    assert tube_stats(client, "email")["pause"] > 0
    assert "email" in store_queue.store.suspended()  # type: ignore[union-attr]
    assert counts_of(web.get("/").text, "email")["suspended"] == "suspended"
    assert web.post("resume", job_type="email").status_code == 303
    assert tube_stats(client, "email")["pause"] == 0
    assert "email" not in store_queue.store.suspended()  # type: ignore[union-attr]


def test_purge_needs_the_job_type_typed_as_confirmation(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes]
) -> None:
    store_queue.add_jobs("email", [{"n": n} for n in range(4)])
    assert web.get("/type/purge", name="email").status_code == 200
    refused = web.post("purge", job_type="email", confirm="emial")
    assert refused.status_code == 400
    assert tube_stats(client, "email")["current-jobs-ready"] == 4
    done = web.post("purge", job_type="email", confirm="email")
    assert done.status_code == 303
    assert tube_stats(client, "email")["current-jobs-ready"] == 0
    assert store_queue.store.count("email") == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("csrf", ["", "not-the-token"])
def test_an_action_without_the_csrf_token_changes_nothing(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes], csrf: str
) -> None:
    store_queue.add_job("email", {"n": 1})
    answer = web.post("purge", csrf=csrf, job_type="email", confirm="email")
    assert answer.status_code == 403
    assert tube_stats(client, "email")["current-jobs-ready"] == 1


def test_an_action_from_another_origin_changes_nothing(
    store_queue: KQueue, web: Web, client: greenstalk.Client[bytes]
) -> None:
    store_queue.add_job("email", {"n": 1})
    token = web.client.cookies.get("kqueue_dashboard_csrf")
    answer = web.client.post(
        "/action/suspend",
        data={"csrf": token, "job_type": "email"},
        headers={"Origin": "http://evil.example"},
    )
    assert answer.status_code == 403
    assert tube_stats(client, "email")["pause"] == 0


def test_actions_are_posts_only(web: Web) -> None:
    assert web.get("/action/suspend", job_type="email").status_code == 405


@pytest.mark.parametrize(
    "back", ["//evil.example/", "/\t/evil.example", "https://evil.example/", "/\\evil.example"]
)
def test_a_redirect_never_leaves_the_dashboard(store_queue: KQueue, web: Web, back: str) -> None:
    answer = web.post("suspend", job_type="email", back=back)
    assert answer.headers["location"].startswith("/?done=")


def test_a_job_by_key_or_id(store_queue: KQueue, web: Web) -> None:
    (key,) = bury(store_queue, "email", [{"to": "<b>ada</b>"}])
    by_key = web.get("/job", target=key)
    assert by_key.status_code == 200
    assert "buried" in by_key.text and "&lt;b&gt;ada&lt;/b&gt;" in by_key.text
    job_id = store_queue.store.get(key).ref.job_id  # type: ignore[union-attr]
    assert key in web.get("/job", target=str(job_id)).text
    assert web.get("/job", target="0" * 32).status_code == 404
    assert web.get("/job", target="<script>").status_code == 400
    assert "<script>" not in web.get("/job", target="<script>").text


def test_every_response_forbids_inline_script(web: Web) -> None:
    for path in ("/", "/type?name=email", "/static/dashboard.js"):
        policy = web.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_overview_shows_beanstalkd_down(store_queue: KQueue, beanstalkd: BeanstalkdProcess) -> None:
    from starlette.testclient import TestClient

    from kqueue.dashboard import create_app

    store_queue.add_job("email", {"n": 1})
    beanstalkd.kill()
    with TestClient(create_app(store_queue)) as browser:
        page = browser.get("/")
    assert page.status_code == 200
    assert "down" in page.text


def test_a_token_guards_every_page(store_queue: KQueue) -> None:
    from starlette.testclient import TestClient

    from kqueue.dashboard import create_app

    with TestClient(create_app(store_queue, token="s3cret")) as browser:
        assert browser.get("/", follow_redirects=False).headers["location"] == "/login"
        assert browser.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert browser.post("/action/suspend", data={"job_type": "x"}).status_code == 401
        login = browser.get("/login").text
        assert str(store_queue.config.port) not in login  # nothing of the queue before login
        csrf = browser.cookies.get("kqueue_dashboard_csrf")
        wrong = browser.post("/login", data={"csrf": csrf, "token": "guess"})
        assert wrong.status_code == 401
        right = browser.post("/login", data={"csrf": csrf, "token": "s3cret"})
        assert right.status_code == 200 and "Job types" in right.text
        assert "s3cret" not in str(browser.cookies.values())


def test_serving_beyond_loopback_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "s3cret")
    with pytest.raises(ConfigurationError, match="without a token"):
        check_bind("0.0.0.0", None)
    assert main(["dashboard", "--bind", "0.0.0.0", "--port", "0"]) == 2
    assert "refusing to serve the dashboard on 0.0.0.0" in capsys.readouterr().err
