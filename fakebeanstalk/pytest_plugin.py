"""pytest plugin of fakebeanstalk, registered through the ``pytest11`` entry point.

Fixtures:

- ``fakebeanstalk``: a fresh started :class:`~fakebeanstalk.FakeBeanstalkServer` per test,
  stopped afterwards. It runs on the system clock, or on ``fakebeanstalk_clock`` when the
  test also asks for that fixture or is marked ``@pytest.mark.fakebeanstalk(clock="fake")``.
- ``fakebeanstalk_clock``: a :class:`~fakebeanstalk.FakeClock` (``.advance(seconds)``).
- ``fakebeanstalk_factory``: a callable making more servers (same keyword arguments as the
  server), all stopped when the test ends; ``fakebeanstalk_factory(binlog_dir=tmp_path)``
  gives one that journals, for tests of restart paths (``crash()`` then ``start()``).

The marker ``@pytest.mark.fakebeanstalk(clock="fake"|"system", max_job_size=N,
unix_path=...)`` configures the ``fakebeanstalk`` fixture. Heavy imports are deferred to the
fixtures so that the plugin costs nothing to test sessions that do not use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fakebeanstalk.clock import FakeClock
    from fakebeanstalk.server import FakeBeanstalkServer

__all__ = ["fakebeanstalk", "fakebeanstalk_clock", "fakebeanstalk_factory", "pytest_configure"]

_MARKER = (
    "fakebeanstalk(clock='system'|'fake', max_job_size=65535, unix_path=None): "
    "options of the fakebeanstalk fixture"
)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``fakebeanstalk`` marker."""
    config.addinivalue_line("markers", _MARKER)


@pytest.fixture
def fakebeanstalk_clock() -> FakeClock:
    """A fake clock, starting at 0, that the ``fakebeanstalk`` server then runs on."""
    from fakebeanstalk.clock import FakeClock

    return FakeClock()


@pytest.fixture
def fakebeanstalk_factory() -> Iterator[Callable[..., FakeBeanstalkServer]]:
    """Make extra started servers; every one is stopped at the end of the test."""
    from fakebeanstalk.server import FakeBeanstalkServer

    started: list[FakeBeanstalkServer] = []

    def make(**kwargs: Any) -> FakeBeanstalkServer:
        server = FakeBeanstalkServer(**kwargs).start()
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def fakebeanstalk(request: pytest.FixtureRequest) -> Iterator[FakeBeanstalkServer]:
    """A fresh fake beanstalkd on a free port of 127.0.0.1, stopped after the test."""
    from fakebeanstalk.server import FakeBeanstalkServer

    marker = request.node.get_closest_marker("fakebeanstalk")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    clock_option = options.pop("clock", None)
    if clock_option == "fake" or "fakebeanstalk_clock" in request.fixturenames:
        options["clock"] = request.getfixturevalue("fakebeanstalk_clock")
    elif clock_option not in (None, "system"):
        raise pytest.UsageError(f"fakebeanstalk marker: unknown clock {clock_option!r}")
    server = FakeBeanstalkServer(**options).start()
    try:
        yield server
    finally:
        server.stop()
