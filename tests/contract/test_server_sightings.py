"""The store contract's server sightings (where recovery last saw each beanstalkd server id
answering), checked against every store: kept as written, overwritten, forgotten, and left
apart from the records and the other metadata."""

from __future__ import annotations

import threading

from kqueue.stores import Store
from kqueue.stores.base import ServerSighting


def test_sightings_come_back_as_written_and_overwritten(store: Store) -> None:
    assert store.servers_seen() == {}
    store.note_servers(
        {
            "a1b2c3d4e5f60718": ServerSighting("10.0.0.1:11300", 100.5),
            "ffffffffffffffff": ServerSighting("h2.example:11301", 101.25),
        }
    )
    store.note_servers({"a1b2c3d4e5f60718": ServerSighting("10.0.0.1:11300", 130.75)})
    assert store.servers_seen() == {
        "a1b2c3d4e5f60718": ServerSighting("10.0.0.1:11300", 130.75),
        "ffffffffffffffff": ServerSighting("h2.example:11301", 101.25),
    }
    store.note_servers({})
    assert len(store.servers_seen()) == 2


def test_forgotten_sightings_go_and_are_counted(store: Store) -> None:
    store.note_servers({f"id{n}": ServerSighting(f"h:{n}", float(n)) for n in range(4)})
    assert store.forget_servers(["id1", "id3", "id9", "id1"]) == 2
    assert store.forget_servers([]) == 0
    assert sorted(store.servers_seen()) == ["id0", "id2"]


def test_sightings_leave_the_other_metadata_alone(store: Store) -> None:
    store.set_suspended("mail", True)
    store.note_servers({"mail": ServerSighting("h:1", 1.0)})
    assert store.suspended() == {"mail"}
    assert store.count() == 0
    assert store.forget_servers(["mail"]) == 1
    assert store.suspended() == {"mail"}


def test_sweepers_noting_at_once_lose_nothing(store: Store) -> None:
    errors: list[BaseException] = []

    def sweeper(n: int) -> None:
        try:
            for at in range(5):
                store.note_servers(
                    {"shared": ServerSighting("h:1", float(at)), f"own{n}": ServerSighting("h", 1)}
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sweeper, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(store.servers_seen()) == ["own0", "own1", "own2", "own3", "shared"]
