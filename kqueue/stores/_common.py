"""Small pieces shared by the store implementations (not public API)."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_StoreT = TypeVar("_StoreT", bound="ClosingStore")


class ClosingStore:
    """Makes a store usable as a context manager that calls ``close()`` on exit."""

    def close(self) -> None:
        """Release connections; overridden by each store."""

    def __enter__(self: _StoreT) -> _StoreT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
