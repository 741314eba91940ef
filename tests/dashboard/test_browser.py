"""The dashboard in a real headless Chromium, served by uvicorn, over a real beanstalkd and a
SQLite store: every page loads, the buttons do what they say to the broker and the store,
the overview refreshes by itself, and a hostile payload runs nothing in the browser.

``KQUEUE_SCREENSHOTS=DIR`` saves PNGs of the main pages there (docs/ holds the ones of the
README: ``KQUEUE_SCREENSHOTS=docs pytest tests/dashboard -m browser``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import greenstalk
import pytest

from kqueue import KQueue
from tests.dashboard.conftest import Served, bury
from tests.servers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

HOSTILE = {
    "note": "<script>window.owned = 'script'; document.title = 'owned'</script>",
    "img": "<img src=x onerror=\"window.owned = 'onerror'\">",
    "close": "</pre><img src=y onerror=\"window.owned = 'breakout'\"><pre>",
}


def tube(client: greenstalk.Client[bytes], job_type: str, field: str) -> int:
    stats: dict[str, Any] = dict(client.stats_tube(f"kq-{job_type}"))
    return int(stats[field])


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("KQUEUE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"dashboard-{name}.png"))


def click_action(page: Any, action: str, within: str = "main") -> None:
    """Press an action's button and wait for the page it redirects to."""
    with page.expect_navigation():
        page.locator(f'{within} button[data-action="{action}"]').first.click()


def new_page(browser: Any, served: Served) -> tuple[Any, list[str]]:
    """A page of a fresh browser context, and the dialogs (alerts) it opened."""
    page = browser.new_context(viewport={"width": 1100, "height": 700}).new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(served.url + "/")
    return page, dialogs


def test_hostile_payload_runs_nothing_in_the_browser(store_queue: KQueue, browser: Any) -> None:
    (key,) = bury(store_queue, "email.send", [HOSTILE])
    with Served(store_queue, refresh=0) as served:
        page, dialogs = new_page(browser, served)
        page.click("text=email.send")
        page.wait_for_selector("pre.payload")
        shown = page.locator("pre.payload").first.inner_text()
        page.goto(f"{served.url}/job?target={key}")
        shown_alone = page.locator("pre.payload").inner_text()
        owned = page.evaluate("() => window.owned === undefined ? null : window.owned")
        scripts = page.evaluate("() => document.querySelectorAll('main script, main img').length")
        title = page.title()
    for text in (shown, shown_alone):
        assert "<script>window.owned" in text and 'onerror=\\"window.owned' in text
    assert owned is None
    assert scripts == 0
    assert dialogs == []
    assert "owned" not in title


def test_every_page_and_button_against_the_real_broker(
    store_queue: KQueue, browser: Any, client: greenstalk.Client[bytes]
) -> None:
    store_queue.add_jobs("email.send", [{"to": f"user{n}@example.com"} for n in range(3)])
    keys = bury(
        store_queue,
        "report.build",
        [{"report": n, "rows": 30, "by": "<ops@example.com>"} for n in range(3)],
    )
    with Served(store_queue, refresh=0.5, sample_every=0.5) as served:
        page, dialogs = new_page(browser, served)
        cell = page.locator('tr[data-job-type="email.send"] td[data-count="ready"]')
        assert cell.inner_text() == "3"
        assert (
            page.locator('tr[data-job-type="report.build"] td[data-count="buried"]').inner_text()
            == "3"
        )
        store_queue.add_job("email.send", {"to": "late@example.com"})
        live = "document.querySelector('tr[data-job-type=\"email.send\"] td[data-count=ready]')"
        # The live refresh, without reloading the page.
        page.wait_for_function(f"() => {live}.textContent.trim() === '4'", timeout=10_000)
        page.wait_for_selector("svg.chart polyline.added", timeout=10_000)  # the rates chart
        screenshot(page, "overview")

        page.click("text=report.build")
        assert page.locator("article.letter").count() == 3
        screenshot(page, "dead-letters")
        click_action(page, "kick", within=f'article[data-key="{keys[0]}"]')
        assert tube(client, "report.build", "current-jobs-ready") == 1
        assert store_queue.store.get(keys[0]).attempts == 0  # type: ignore[union-attr]
        click_action(page, "delete", within=f'article[data-key="{keys[1]}"]')
        assert store_queue.store.get(keys[1]) is None  # type: ignore[union-attr]
        assert tube(client, "report.build", "current-jobs-buried") == 1
        click_action(page, "kick-all")
        assert tube(client, "report.build", "current-jobs-buried") == 0
        assert tube(client, "report.build", "current-jobs-ready") == 2
        assert "kicked 1 job(s)" in page.locator(".flash").inner_text()

        page.goto(f"{served.url}/job?target={keys[0]}")
        assert page.locator('[data-field="state"]').inner_text() == "ready"
        screenshot(page, "job")

        page.goto(f"{served.url}/type?name=email.send")
        click_action(page, "suspend")
        assert tube(client, "email.send", "pause") > 0
        assert page.locator("#suspended").is_visible()
        click_action(page, "resume")
        assert tube(client, "email.send", "pause") == 0
        assert "email.send" not in store_queue.store.suspended()  # type: ignore[union-attr]

        page.click("text=Purge…")
        page.fill('input[name="confirm"]', "email.send")
        screenshot(page, "purge")
        click_action(page, "purge")
        assert tube(client, "email.send", "current-jobs-ready") == 0
        assert store_queue.store.count("email.send") == 0  # type: ignore[union-attr]
        assert "purged 4 job(s)" in page.locator(".flash").inner_text()
        assert wait_for(lambda: "email.send" in page.content(), timeout=5)

        page.goto(served.url + "/")
        click_action(page, "sweep")
        assert "recovery pass: scanned" in page.locator(".flash").inner_text()
    assert dialogs == []
