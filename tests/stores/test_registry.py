"""open_store: built-in schemes, schemes registered in code, and third-party stores that join
through the ``kqueue.stores`` entry point group."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kqueue import ConfigurationError, KQueue
from kqueue.stores import MemoryStore, accepted_schemes, open_store, register_scheme
from tests.stores.example_store import ExampleStore


@pytest.fixture
def example_store_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example store's distribution metadata on sys.path, as pip would install it."""
    dist = tmp_path / "example_kqueue_store-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: example-kqueue-store\n")
    (dist / "entry_points.txt").write_text(
        "[kqueue.stores]\nexample = tests.stores.example_store:open_example\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield


def test_a_store_from_an_entry_point_opens_by_its_scheme(example_store_installed: None) -> None:
    store = open_store("example://somewhere/else")
    assert isinstance(store, ExampleStore)
    assert store.url == "example://somewhere/else"
    assert "example" in accepted_schemes()


def test_a_queue_runs_its_jobs_through_a_plugin_store(
    example_store_installed: None, beanstalkd: object
) -> None:
    host, port = beanstalkd.host, beanstalkd.port  # type: ignore[attr-defined]
    with KQueue(host=host, port=port, bulk_store="example://jobs") as queue:
        assert isinstance(queue.store, ExampleStore)
        seen: list[object] = []
        queue.add_handler("p", lambda job: seen.append(job.data))
        queue.add_job("p", {"via": "plugin"})
        assert queue.run_jobs(time_limit_ms=0) == 1
        assert seen == [{"via": "plugin"}]


def test_an_unknown_scheme_names_the_accepted_ones_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store("nosuch://user:hunter2@host/0")
    assert "hunter2" not in str(caught.value)
    assert "redis://" in str(caught.value) and "memory://" in str(caught.value)


def test_a_scheme_registered_in_code_opens_its_store() -> None:
    register_scheme("test-mem", lambda url: MemoryStore())
    assert isinstance(open_store("test-mem://x"), MemoryStore)
