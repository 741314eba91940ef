"""Producers of a queue over several beanstalkd servers: every batch on the server whose turn
it is, each job's reference naming the server that holds it, and while one server is up,
every add succeeds (the jobs of a dead server's turn go to the next one in the same call)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from kqueue import KQueue
from kqueue.producer import NOT_SCHEDULED
from kqueue.stores import MemoryStore
from kqueue.stores.base import iter_records
from tests.bond.conftest import addresses, id_of, key_of, ready_on
from tests.servers import BeanstalkdProcess

TUBE = "kq-mail"


def test_adds_take_turns_over_the_servers(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    queue = make_bonded(bulk_store=store)
    ids = [queue.add_job("mail", {"n": n}) for n in range(30)]
    ids += queue.add_jobs("mail", [{"n": n} for n in range(30, 36)])  # one batch, one server
    assert NOT_SCHEDULED not in ids
    counts = sorted(ready_on(broker, TUBE) for broker in trio)
    assert counts == [10, 10, 16]
    # Every record names the server that holds its job, and the job there is its job.
    held = {id_of(broker): broker for broker in trio}
    for record in iter_records(store):
        assert record.ref is not None
        assert key_of(held[record.ref.server_id], record.ref.job_id) == record.key


def test_inline_jobs_take_turns_too(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    queue = make_bonded()
    for n in range(9):
        queue.add_job("mail", {"n": n})
    assert [ready_on(broker, TUBE) for broker in trio] == [3, 3, 3]


def test_adds_succeed_while_a_server_is_dead(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    queue = make_bonded(bulk_store=store)
    queue.add_job("mail", {"n": -1})  # connected to the first server
    trio[0].kill()
    ids = [queue.add_job("mail", {"n": n}) for n in range(20)]
    ids += queue.add_jobs("mail", [{"n": n} for n in range(20, 2520)])  # three batches
    assert NOT_SCHEDULED not in ids
    assert queue.producer.servers.first.health.down is not None
    assert ready_on(trio[1], TUBE) + ready_on(trio[2], TUBE) == 2520
    assert all(record.ref is not None for record in iter_records(store))


def test_inline_adds_succeed_while_a_server_is_dead(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    queue = make_bonded()
    trio[1].kill()
    for n in range(10):
        queue.add_job("mail", {"n": n})
    assert ready_on(trio[0], TUBE) + ready_on(trio[2], TUBE) == 10


def test_all_servers_dead_leaves_stored_jobs_to_the_sweeper(
    trio: list[BeanstalkdProcess], make_bonded: Callable[..., KQueue]
) -> None:
    store = MemoryStore()
    queue = make_bonded(bulk_store=store)
    for broker in trio:
        broker.kill()
    assert queue.add_job("mail", {"n": 1}) == NOT_SCHEDULED
    assert len(list(iter_records(store))) == 1


@pytest.fixture
def black_hole() -> Iterator[tuple[str, list[socket.socket]]]:
    """A TCP server that accepts connections and never answers: every command times out."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for sock in accepted:
        sock.close()
    listener.close()


def test_a_frozen_server_costs_one_timeout_not_one_per_add(
    trio: list[BeanstalkdProcess], black_hole: tuple[str, list[socket.socket]]
) -> None:
    hole, accepted = black_hole
    queue = KQueue(
        servers=[hole, *addresses(trio[:2])], bulk_store=MemoryStore(), command_timeout=0.3
    )
    try:
        ids = [queue.add_job("mail", {"n": n}) for n in range(30)]
    finally:
        queue.close()
    assert NOT_SCHEDULED not in ids
    # One connection, one timeout: then the server is marked down and skipped (its probe
    # opens at most one more connection a second).
    assert len(accepted) <= 2
    assert ready_on(trio[0], TUBE) + ready_on(trio[1], TUBE) == 30
