"""JobIdSet (kqueue.held): the ids a recovery pass has put, as bits from the first one."""

from __future__ import annotations

from kqueue.held import MAX_SPAN, JobIdSet


def test_an_empty_set_holds_nothing() -> None:
    assert 1 not in JobIdSet()


def test_ids_added_in_any_order_are_held_and_no_others() -> None:
    ids = JobIdSet()
    added = [5, 6, 7, 1000, 9, 100_000, 64, 5]
    for job_id in added:
        ids.add(job_id)
    assert all(job_id in ids for job_id in added)
    assert [j for j in range(0, 100_010) if j in ids] == sorted(set(added))


def test_ids_below_the_first_or_beyond_the_span_are_not_kept() -> None:
    ids = JobIdSet()
    ids.add(1000)
    ids.add(999)
    ids.add(1000 + MAX_SPAN)
    assert 1000 in ids and 999 not in ids and 1000 + MAX_SPAN not in ids
