"""The store contract's recovery pass reports, checked against every store: the newest kept,
newest first, the text as written, and several sweepers writing at once lose nothing kept."""

from __future__ import annotations

import json
import threading

from kqueue.stores import Store
from kqueue.stores.base import SWEEPS_KEPT


def test_reports_come_back_newest_first_as_written(store: Store) -> None:
    assert store.recent_sweeps() == []
    store.record_sweep(json.dumps({"requeued": 3, "note": "ünïcode"}), at=100.5)
    store.record_sweep(json.dumps({"requeued": 0}), at=101.25)
    assert store.recent_sweeps() == [
        (101.25, json.dumps({"requeued": 0})),
        (100.5, json.dumps({"requeued": 3, "note": "ünïcode"})),
    ]
    assert store.recent_sweeps(limit=1) == [(101.25, json.dumps({"requeued": 0}))]
    assert store.recent_sweeps(limit=0) == []


def test_only_the_newest_reports_are_kept(store: Store) -> None:
    for n in range(SWEEPS_KEPT + 7):
        store.record_sweep(f"pass {n}", at=float(n))
    kept = store.recent_sweeps(limit=SWEEPS_KEPT + 7)
    assert [report for _, report in kept] == [
        f"pass {n}" for n in reversed(range(7, SWEEPS_KEPT + 7))
    ]


def test_reports_of_sweepers_writing_at_once_are_all_kept(store: Store) -> None:
    def sweeper(name: str) -> None:
        for n in range(3):
            store.record_sweep(f"{name} {n}", at=float(n))

    threads = [threading.Thread(target=sweeper, args=(f"s{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    reports = sorted(report for _, report in store.recent_sweeps())
    assert reports == sorted(f"s{i} {n}" for i in range(4) for n in range(3))
