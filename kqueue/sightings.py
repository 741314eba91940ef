"""Which beanstalkd servers of a bonded queue are down for now, rather than gone.

A recovery pass leaves alone the jobs of a server that stopped answering less than
``server_down_grace`` seconds ago: a server back sooner still holds them (from its binlog), and
putting them on the others meanwhile would run them twice. To tell "down for now" from "gone"
a pass needs to know at which address each server id lived and when it last answered. A pass
keeps that in the store (:class:`~kqueue.stores.base.ServerSighting`, one per server id,
written by every pass of a bonded queue), so that a sweeper started while a server is down
knows it as well as one that watched it go.

A server id is waited for when its address is one of the queue's, does not answer now, and
the id was seen answering there less than ``server_down_grace`` seconds ago (by any sweeper
sharing the store, or, from this process's memory, when this process first found the address
silent). An id whose address answers now with another id is a server that restarted (empty,
or from its binlog), handled at once; one whose address is no longer configured, or that no
pass ever saw answering, is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping

from kqueue.errors import KQueueError
from kqueue.stores.base import ServerSighting, Store

__all__ = ["SIGHTINGS_KEPT", "ServerWatch", "note_answering", "sighted_at"]

logger = logging.getLogger("kqueue")

SIGHTINGS_KEPT = 7 * 24 * 3600.0
"""A sighting older than this whose server id no record names any more is forgotten."""


class ServerWatch:
    """What recovery passes of one process learn of the servers of a bonded queue, and what
    they share with the others through the store."""

    def __init__(self, addresses: Collection[str], grace: float) -> None:
        self.addresses = frozenset(addresses)
        self.grace = grace
        self._seen: dict[str, str] = {}  # address -> the server id it last answered with
        self._down_since: dict[str, float] = {}  # address -> when a pass here first missed it

    def down_for_now(self, live: Mapping[str, str], store: Store | None) -> set[str]:
        """The ids of the servers whose jobs a pass leaves to them, given ``live`` (address ->
        server id of every server answering now); notes the live ones in ``store``."""
        now_mono, now = time.monotonic(), time.time()
        for address, server_id in live.items():
            self._seen[address] = server_id
            self._down_since.pop(address, None)
        silent = self.addresses - set(live)
        waiting = set()
        for address, server_id in self._seen.items():
            if address in silent:
                since = self._down_since.setdefault(address, now_mono)
                if now_mono - since < self.grace:
                    waiting.add(server_id)
        for server_id, sighting in self._shared(live, store, now).items():
            if sighting.address in silent and now - sighting.seen_at < self.grace:
                waiting.add(server_id)
        return waiting - set(live.values())

    def _shared(
        self, live: Mapping[str, str], store: Store | None, now: float
    ) -> dict[str, ServerSighting]:
        """The sightings other passes left in the store; this pass's own written there. A
        store that fails costs a log line: the pass goes on with this process's memory."""
        if store is None:
            return {}
        try:
            seen = store.servers_seen()
            store.note_servers({sid: ServerSighting(a, now) for a, sid in live.items()})
            self._forget_old(store, seen, now)
        except KQueueError as exc:
            logger.warning("server sightings not read or kept in the store: %s", exc)
            return {}
        return seen

    @staticmethod
    def _forget_old(store: Store, seen: Mapping[str, ServerSighting], now: float) -> None:
        """Forget the sightings older than :data:`SIGHTINGS_KEPT` that no record names."""
        old = {sid for sid, sighting in seen.items() if now - sighting.seen_at > SIGHTINGS_KEPT}
        if old:
            store.forget_servers(old - store.referenced_servers())


def note_answering(store: Store, answering: Mapping[str, str]) -> None:
    """Keep in ``store`` that these servers (address -> server id) answer now; a store that
    fails costs a log line."""
    now = time.time()
    try:
        store.note_servers({sid: ServerSighting(a, now) for a, sid in answering.items()})
    except KQueueError as exc:
        logger.warning("server sightings not kept in the store: %s", exc)


def sighted_at(store: Store | None) -> dict[str, str]:
    """Server id -> the address it was last seen answering at (empty without a store, or
    when the store does not answer)."""
    if store is None:
        return {}
    try:
        return {sid: sighting.address for sid, sighting in store.servers_seen().items()}
    except KQueueError:
        return {}
