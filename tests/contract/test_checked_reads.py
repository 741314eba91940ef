"""``get_checked_many``: what a worker reads for jobs whose payload came inline, on every
store kind alike (one round trip on Redis, the fallback's two elsewhere)."""

from __future__ import annotations

import pytest

from kqueue.stores import BrokerRef, JobRecord, Store
from kqueue.stores.base import RecordStatus, StoreBase
from tests.contract.records import make_record

SERVER = "a1b2c3d4e5f60718"
MINE = BrokerRef(SERVER, 7)


@pytest.fixture
def checked(store: Store) -> StoreBase:
    assert isinstance(store, StoreBase)
    return store


def test_a_record_naming_the_job_read_answers_its_status_only(checked: StoreBase) -> None:
    # Given a record whose reference names the job the worker holds
    checked.put_many([make_record("k1", attempts=2, ref=MINE)])
    # When the worker reads it checked against that job
    found = checked.get_checked_many([("k1", MINE)])
    # Then its status comes back (the inline copy is vouched for)
    assert found == {"k1": RecordStatus(2, "enqueued", MINE)}


@pytest.mark.parametrize(
    "ref",
    [None, BrokerRef(SERVER, 8), BrokerRef("ffffffffffffffff", 7)],
    ids=["no reference yet", "another job", "another server"],
)
def test_a_record_naming_another_reference_is_read_whole(
    checked: StoreBase, ref: BrokerRef | None
) -> None:
    # Given a record that does not name the job the worker holds (the producer's swap not
    # done yet, or a duplicate, or a forged body)
    record = make_record("k1", payload=b'{"to": "record"}', attempts=1, ref=ref)
    checked.put_many([record])
    # When it is read checked against that job
    found = checked.get_checked_many([("k1", MINE)])
    # Then the whole record comes back, payload and all
    assert isinstance(found["k1"], JobRecord)
    assert found["k1"] == record


def test_records_gone_are_left_out_and_each_key_is_answered_once(checked: StoreBase) -> None:
    # Given two records, one naming the held job, one naming none; a third key never written
    checked.put_many([make_record("k1", ref=MINE), make_record("k2")])
    # When a window reads them, "k1" twice (a duplicate delivery: checked against its first)
    found = checked.get_checked_many(
        [("k1", MINE), ("gone", MINE), ("k2", BrokerRef(SERVER, 9)), ("k1", BrokerRef(SERVER, 5))]
    )
    # Then the missing key is absent, k1 is a status, k2 whole
    assert set(found) == {"k1", "k2"}
    assert isinstance(found["k1"], RecordStatus)
    assert isinstance(found["k2"], JobRecord)
    assert checked.get_checked_many([]) == {}
