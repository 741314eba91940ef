"""Helpers for the KQueue core tests (the queue fixtures live in tests/conftest.py)."""

from __future__ import annotations

import greenstalk


def tube_stats(client: greenstalk.Client[bytes], tube: str) -> dict[str, int]:
    """stats-tube as ints, or all zeros when the tube does not exist."""
    try:
        return {k: v for k, v in client.stats_tube(tube).items() if isinstance(v, int)}
    except greenstalk.NotFoundError:
        return {"current-jobs-ready": 0, "current-jobs-delayed": 0, "total-jobs": 0}
