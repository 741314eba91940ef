"""The rates of the last hour: differences between samples of beanstalkd's counters."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from kqueue import KQueue
from kqueue.dashboard import create_app
from kqueue.dashboard.rates import RateHistory, Sample, chart_points
from tests.dashboard.conftest import bury
from tests.servers import wait_for


def test_rates_are_differences_per_minute_and_a_restarted_counter_starts_afresh() -> None:
    history = RateHistory(window=3600)
    for at, added in [(0, 0), (60, 60), (120, 180), (180, 5)]:
        history.add(Sample(float(at), added, 0, 0))
    assert history.steps("added") == [(60.0, 60.0), (120.0, 120.0), (180.0, 5.0)]
    assert history.total("added") == 185


def test_history_keeps_one_window() -> None:
    history = RateHistory(window=100)
    for at in range(0, 500, 10):
        history.add(Sample(float(at), at, 0, 0))
    assert history.samples[0].at >= 490 - 100 - 10
    assert history.total("added") <= 110


def test_chart_points_span_the_window() -> None:
    points = chart_points([(3600.0 - 1800, 10.0), (3600.0, 20.0)], 3600.0, 20.0, 600, 100)
    assert points == "300.0,50.0 600.0,0.0"


def test_overview_draws_what_was_sampled(store_queue: KQueue) -> None:
    with TestClient(create_app(store_queue, refresh=0, sample_every=0.05)) as browser:
        store_queue.add_jobs("email", [{"n": n} for n in range(5)])
        bury(store_queue, "report", [{"r": 1}])

        def totals() -> dict[str, int]:
            html = browser.get("/fragment/overview").text
            found = re.findall(r'data-rate="(\w+)">(\d+)<', html)
            return {name: int(value) for name, value in found}

        def sampled_all() -> bool:
            # A sample may fall between the adds and the burial: the next one shows both.
            seen = totals()
            return seen.get("added") == 6 and seen.get("failed", 0) >= 1

        assert wait_for(sampled_all, timeout=10), totals()
        assert "<polyline" in browser.get("/").text
