"""ServerState alone, on a FakeClock: ordering, waiters, tubes, timers. No sockets, no sleeps."""

from __future__ import annotations

import pytest

from fakebeanstalk import FakeClock
from fakebeanstalk.state import Client, ServerState

S = 1_000_000_000


class Harness:
    """A ServerState driven by a FakeClock, with helpers speaking in seconds."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.state = ServerState(self.clock)
        self.clock.subscribe(self)

    def next_deadline(self) -> int | None:
        return self.state.next_deadline()

    def time_changed(self) -> None:
        self.state.tick()

    def client(self) -> Client:
        return self.state.connect()

    def put(self, client: Client, body: bytes, pri: int = 0, delay: int = 0, ttr: int = 60) -> int:
        job = self.state.begin_put(client, pri, delay, ttr)
        reply = self.state.finish_put(job, body + b"\r\n")
        assert reply.startswith(b"INSERTED")
        return job.id

    def take(self, client: Client) -> bytes:
        out = bytes(client.outbox)
        client.outbox.clear()
        return out


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_ready_jobs_are_served_by_priority_then_id(h: Harness) -> None:
    producer, worker = h.client(), h.client()
    h.put(producer, b"late", pri=5)
    h.put(producer, b"first", pri=1)
    h.put(producer, b"second", pri=1)
    order = []
    for _ in range(3):
        h.state.reserve(worker, -1)
        order.append(h.take(worker).split(b"\r\n")[1])
    assert order == [b"first", b"second", b"late"]


def test_delayed_jobs_become_ready_when_the_clock_reaches_their_deadline(h: Harness) -> None:
    client = h.client()
    job_id = h.put(client, b"x", delay=10)
    h.clock.advance(9.999)
    assert h.state.jobs[job_id].state == "delayed"
    h.clock.advance(0.001)
    assert h.state.jobs[job_id].state == "ready"


def test_reserve_timeout_answers_timed_out_exactly_at_the_timeout(h: Harness) -> None:
    worker = h.client()
    h.state.reserve(worker, 5)
    h.clock.advance(4.9)
    assert h.take(worker) == b""
    h.clock.advance(0.1)
    assert h.take(worker) == b"TIMED_OUT\r\n"


def test_job_delayed_inside_a_jump_is_reserved_before_a_later_timeout_fires(h: Harness) -> None:
    producer, worker = h.client(), h.client()
    h.put(producer, b"soon", delay=1)
    h.state.reserve(worker, 2)
    h.clock.advance(10)
    assert h.take(worker).startswith(b"RESERVED 1 4\r\n")


def test_ttr_expiry_returns_the_job_to_ready_and_counts_a_timeout(h: Harness) -> None:
    client = h.client()
    job_id = h.put(client, b"x", ttr=3)
    h.state.reserve(client, -1)
    h.take(client)
    h.clock.advance(3)
    job = h.state.jobs[job_id]
    assert (job.state, job.timeouts, h.state.timeouts) == ("ready", 1, 1)


def test_waiting_client_gets_deadline_soon_one_second_before_its_ttr(h: Harness) -> None:
    client = h.client()
    h.put(client, b"x", ttr=5)
    h.state.reserve(client, -1)
    h.take(client)
    h.state.reserve(client, -1)
    h.clock.advance(3.9)
    assert h.take(client) == b""
    h.clock.advance(0.1)
    assert h.take(client) == b"DEADLINE_SOON\r\n"
    assert h.state.jobs[1].state == "reserved"


def test_reserve_in_the_safety_margin_answers_deadline_soon_at_once(h: Harness) -> None:
    client = h.client()
    h.put(client, b"x", ttr=1)
    h.state.reserve(client, -1)
    h.take(client)
    h.state.reserve(client, -1)
    assert h.take(client) == b"DEADLINE_SOON\r\n"


def test_paused_tube_serves_nobody_until_the_pause_ends(h: Harness) -> None:
    producer, worker = h.client(), h.client()
    h.put(producer, b"x")
    assert h.state.pause_tube("default", 2)
    h.state.reserve(worker, -1)
    h.clock.advance(1.5)
    assert h.take(worker) == b""
    h.clock.advance(0.5)
    assert h.take(worker).startswith(b"RESERVED 1 1")


def test_waiters_are_served_in_ms_take_rotation_order(h: Harness) -> None:
    producer = h.client()
    waiters = [h.client() for _ in range(3)]
    for waiter in waiters:
        h.state.reserve(waiter, -1)
    served = []
    for body in (b"a", b"b", b"c"):
        h.put(producer, body)
        served += [i for i, w in enumerate(waiters) if h.take(w)]
    # ms_take: item 0, then (swap-remove moved item 2 to slot 0) index 1 -> item 1, then 2.
    assert served == [0, 1, 2]


def test_best_job_across_watched_tubes_goes_to_a_waiter_of_its_tube(h: Harness) -> None:
    producer, worker = h.client(), h.client()
    h.state.use(producer, "a")
    h.put(producer, b"low", pri=9)
    h.state.use(producer, "b")
    h.put(producer, b"high", pri=1)
    h.state.watch(worker, "a")
    h.state.watch(worker, "b")
    h.state.reserve(worker, -1)
    assert h.take(worker).split(b"\r\n")[1] == b"high"


def test_tubes_vanish_when_unreferenced_and_the_list_uses_swap_remove(h: Harness) -> None:
    client = h.client()
    h.state.watch(client, "a")
    h.state.watch(client, "b")
    assert [t.name for t in h.state.tubes] == ["default", "a", "b"]
    h.state.ignore(client, "a")
    assert [t.name for t in h.state.tubes] == ["default", "b"]
    h.state.ignore(client, "default")
    assert [t.name for t in client.watch] == ["b"]
    assert [t.name for t in h.state.tubes] == ["default", "b"]


def test_default_tube_is_never_destroyed(h: Harness) -> None:
    client = h.client()
    h.state.use(client, "other")
    h.state.watch(client, "other")
    h.state.ignore(client, "default")
    assert h.state.find_tube("default") is not None


def test_disconnect_releases_reserved_jobs_without_counting(h: Harness) -> None:
    client = h.client()
    job_id = h.put(client, b"x")
    h.state.reserve(client, -1)
    h.state.disconnect(client)
    job = h.state.jobs[job_id]
    assert (job.state, job.releases, job.timeouts, h.state.reserved) == ("ready", 0, 0, 0)


def test_kick_prefers_buried_jobs_oldest_first(h: Harness) -> None:
    client = h.client()
    for body in (b"a", b"b", b"c"):
        h.put(client, body)
    h.put(client, b"delayed", delay=100)
    for _ in range(3):
        h.state.reserve(client, -1)
    for job_id in (2, 1, 3):
        assert h.state.bury(client, job_id, 0)
    assert h.state.kick(client, 2) == 2
    assert [h.state.jobs[i].state for i in (1, 2, 3, 4)] == ["ready", "ready", "buried", "delayed"]


def test_ids_are_taken_when_the_put_line_is_accepted(h: Harness) -> None:
    client = h.client()
    job = h.state.begin_put(client, 0, 0, 1)
    assert h.state.finish_put(job, b"xx") == b"EXPECTED_CRLF\r\n"
    assert h.put(client, b"ok") == 2


def test_drain_mode_refuses_puts(h: Harness) -> None:
    client = h.client()
    h.state.draining = True
    job = h.state.begin_put(client, 0, 0, 1)
    assert h.state.finish_put(job, b"x\r\n") == b"DRAINING\r\n"
    assert h.state.jobs == {}


def test_clock_cannot_go_backwards() -> None:
    from fakebeanstalk import ClockError

    with pytest.raises(ClockError):
        FakeClock().advance(-1)
