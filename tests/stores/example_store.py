"""A store from another package, as it joins kqueue: a class that passes the store contract
(here the memory store's), and a function that opens it from a URL, named in the package's
``pyproject.toml``::

    [project.entry-points."kqueue.stores"]
    example = "example_store:open_example"

after which ``KQueue(bulk_store="example://...")`` and ``kqueue ... --store example://...``
open it. tests/stores/test_registry.py installs it as such a package would be.
"""

from __future__ import annotations

from kqueue.stores import MemoryStore, Store


class ExampleStore(MemoryStore):
    """The memory store under another name, remembering the URL it was opened from."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url


def open_example(url: str) -> Store:
    """The entry point: a store for ``example://`` URLs."""
    return ExampleStore(url)
