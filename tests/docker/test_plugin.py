"""Without a Docker engine the container tests skip on a laptop and fail where they must run.

Each case runs one container test in a child pytest pointed at a socket nobody serves, so these
checks need no engine and never touch one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
A_CONTAINER_TEST = "tests/docker/test_containers.py::test_redis_container_is_flushed_for_each_test"


def run_without_engine(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the container test in a child pytest whose engine socket does not exist."""
    child_env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"CI", "KQUEUE_TEST_DOCKER", "PYTEST_ADDOPTS"}
    }
    child_env |= {"KQUEUE_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"} | env
    return subprocess.run(
        [sys.executable, "-m", "pytest", A_CONTAINER_TEST, "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_container_tests_skip_locally_naming_the_missing_engine(tmp_path: Path) -> None:
    done = run_without_engine(tmp_path)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "no Docker engine answers" in done.stdout
    assert "ci/docker.sh start" in done.stdout  # the skip says how to get one


@pytest.mark.parametrize("env", [{"CI": "true"}, {"KQUEUE_TEST_DOCKER": "1"}])
def test_container_tests_fail_in_ci_or_when_asked_for(tmp_path: Path, env: dict[str, str]) -> None:
    done = run_without_engine(tmp_path, **env)
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout
    assert "no Docker engine answers" in done.stdout
