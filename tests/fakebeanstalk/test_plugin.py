"""The pytest plugin, exercised in throwaway pytest runs (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _inner_runs_configure_pytest_asyncio(pytester: pytest.Pytester) -> None:
    """The throwaway runs load pytest-asyncio too (a test extra); without its loop-scope
    setting each run warns that the default will change."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_fixture_gives_a_started_server_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import greenstalk

        def test_one(fakebeanstalk):
            with greenstalk.Client((fakebeanstalk.host, fakebeanstalk.port)) as client:
                assert client.put("x") == 1

        def test_two(fakebeanstalk):
            with greenstalk.Client(fakebeanstalk.address) as client:
                assert client.put("x") == 1  # a fresh server: ids start again
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_clock_fixture_makes_the_server_run_on_fake_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import greenstalk

        def test_delay(fakebeanstalk, fakebeanstalk_clock):
            assert fakebeanstalk.clock is fakebeanstalk_clock
            with greenstalk.Client(fakebeanstalk.address) as client:
                client.put("later", delay=3600)
                fakebeanstalk_clock.advance(3600)
                assert client.reserve(timeout=0).body == "later"
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_marker_selects_the_fake_clock_and_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from fakebeanstalk import FakeClock

        @pytest.mark.fakebeanstalk(clock="fake", max_job_size=10)
        def test_marked(fakebeanstalk):
            assert isinstance(fakebeanstalk.clock, FakeClock)
            assert fakebeanstalk.stats()["max-job-size"] == "10"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)


def test_marker_is_declared(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["*fakebeanstalk(clock=*"])


def test_factory_makes_extra_servers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_two_servers(fakebeanstalk, fakebeanstalk_factory):
            other = fakebeanstalk_factory(max_job_size=5)
            assert other.port != fakebeanstalk.port
            assert other.stats()["max-job-size"] == "5"
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_unknown_clock_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.fakebeanstalk(clock="sundial")
        def test_bad(fakebeanstalk):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=1)  # the fixture refused it: the test body never ran
    result.stdout.fnmatch_lines(["*unknown clock 'sundial'*"])
