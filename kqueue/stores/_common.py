"""Small pieces shared by the store implementations (not public API)."""

from __future__ import annotations

from collections.abc import Sequence

from kqueue.stores.base import RefSwap


def one_new_server(swaps: Sequence[RefSwap]) -> str | None:
    """The server of swaps that all go from no reference to one on that server, each key
    once (the shape add_jobs sends); None for any other batch."""
    first = swaps[0][2] if swaps else None
    if first is None or len({key for key, _, _ in swaps}) != len(swaps):
        return None
    for _, expected, new in swaps:
        if expected is not None or new is None or new.server_id != first.server_id:
            return None
    return first.server_id


def one_server_pair(swaps: Sequence[RefSwap]) -> tuple[str, str] | None:
    """(expected server, new server) of swaps that all go from a reference on one server to a
    reference on one server, each key once (the shapes recovery sends: claims, renames, new
    references of recovered jobs); None for any other batch."""
    if not swaps or len({key for key, _, _ in swaps}) != len(swaps):
        return None
    first_expected, first_new = swaps[0][1], swaps[0][2]
    if first_expected is None or first_new is None:
        return None
    for _, expected, new in swaps:
        if expected is None or new is None:
            return None
        if expected.server_id != first_expected.server_id:
            return None
        if new.server_id != first_new.server_id:
            return None
    return first_expected.server_id, first_new.server_id
