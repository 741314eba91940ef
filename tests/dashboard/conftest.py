"""Fixtures of the dashboard tests: a queue with a store on a real beanstalkd, the dashboard
over it (in process through Starlette's TestClient, or served by uvicorn for a browser), a
way to bury jobs as a failing handler does, and a real headless Chromium: Debian's chromium
package driven by Playwright through ``executable_path`` (never ``playwright install``)."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from kqueue import Job, KQueue, RetryPolicy
from kqueue.dashboard import create_app
from kqueue.dashboard.security import CSRF_COOKIE
from kqueue.serialization import decode_body
from tests.servers import missing_service, wait_for


def fail(job: Job) -> None:
    """A handler that always fails: its jobs are buried after one attempt."""
    raise RuntimeError(f"cannot handle job of {job.job_type}")


@pytest.fixture
def store_queue(make_queue: Callable[..., KQueue], sqlite_url: str) -> KQueue:
    """A queue with a SQLite store on the test's real beanstalkd; one attempt per job."""
    return make_queue(bulk_store=sqlite_url, retry=RetryPolicy(max_attempts=1))


def bury(queue: KQueue, job_type: str, payloads: list[Any]) -> list[str]:
    """Add jobs of a type and run them with a failing handler: they end buried. Their keys."""
    ids = queue.add_jobs(job_type, payloads)
    queue.add_handler(job_type, fail)
    try:
        queue.run_jobs(count_limit=len(payloads), time_limit_ms=2000, job_types=[job_type])
    finally:
        queue.remove_handler(job_type)
    keys = []
    for job_id in ids:
        found = queue.admin.peek_job(job_id)
        assert found is not None
        assert queue.job_stats(job_id)["state"] == "buried"
        body = decode_body(found.body)
        assert body is not None
        keys.append(body.key)
    return keys


class Web:
    """The dashboard in process: GET pages, POST actions with the browser's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.client.get("/")  # the first page sets the CSRF cookie

    def get(self, path: str, **params: Any) -> Any:
        """A page."""
        return self.client.get(path, params=params, follow_redirects=False)

    def post(self, action: str, *, csrf: str | None = None, **fields: str) -> Any:
        """An action with this browser's CSRF token (or the one given)."""
        token = self.client.cookies.get(CSRF_COOKIE) if csrf is None else csrf
        data = {"csrf": token or "", "back": "/", **fields}
        return self.client.post(f"/action/{action}", data=data, follow_redirects=False)


@pytest.fixture
def web(store_queue: KQueue) -> Iterator[Web]:
    """The dashboard of :func:`store_queue`, in process."""
    with TestClient(create_app(store_queue, refresh=0, sample_every=0)) as client:
        yield Web(client)


def counts_of(html: str, job_type: str) -> dict[str, str]:
    """The overview row of a job type as {column: text}."""
    row = re.search(rf'<tr data-job-type="{re.escape(job_type)}">(.*?)</tr>', html, re.S)
    assert row is not None, f"no row for {job_type}"
    cells = re.findall(r'data-count="(\w+)">(.*?)</td>', row.group(1), re.S)
    return {name: re.sub(r"<[^>]+>", "", text).strip() for name, text in cells}


class Served:
    """The dashboard served by uvicorn on a free port in a thread (for a real browser)."""

    def __init__(self, queue: KQueue, **options: Any) -> None:
        import uvicorn

        from kqueue.cli.dashboard_command import listen

        self.sock = listen("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(queue, **options), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([self.sock],), daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        assert wait_for(lambda: self.server.started, timeout=10), "dashboard did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


# The Debian package's real binary; /usr/bin/chromium is a shell wrapper around it.
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_binary() -> str | None:
    """Where the system's Chromium is, or None."""
    for path in CHROMIUM_PATHS:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser), closed after the test."""
    binary = chromium_binary()
    if binary is None:
        missing_service("chromium not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright not installed (pip install -e '.[test]')")
        raise
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=binary, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
