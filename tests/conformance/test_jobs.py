"""Job states and ordering: ready/delayed/buried order, waiters, ownership, kick, peek."""

from __future__ import annotations

import time

from tests.conformance.rawclient import RawConnection, put_cmd, stats_dict
from tests.conformance.targets import ServerTarget

NOT_FOUND = b"NOT_FOUND\r\n"


def _reserve_bury(conn: RawConnection, job_id: int, body: bytes = b"x") -> None:
    reply = b"RESERVED %d %d\r\n%s\r\n" % (job_id, len(body), body)
    assert conn.cmd(b"reserve-job %d\r\n" % job_id) == reply
    assert conn.cmd(b"bury %d 0\r\n" % job_id) == b"BURIED\r\n"


def _wait_for_waiting(conn: RawConnection, count: int) -> None:
    """Poll until ``count`` connections are blocked in a reserve."""
    deadline = time.monotonic() + 2.0
    while stats_dict(conn.cmd(b"stats\r\n"))["current-waiting"] != str(count):
        assert time.monotonic() < deadline, f"never {count} waiting"
        time.sleep(0.002)


def test_ready_jobs_are_reserved_by_priority_then_id(conn: RawConnection) -> None:
    """Lower priority value first; equal priorities by id; a released job keeps its id."""
    for pri, body in ((5, b"a"), (3, b"b"), (5, b"c"), (3, b"d")):
        conn.send(put_cmd(body, pri=pri, ttr=10))
    assert conn.replies(4) == [b"INSERTED %d\r\n" % i for i in range(1, 5)]
    assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"RESERVED 2 1\r\nb\r\n"
    assert conn.cmd(b"release 2 5 0\r\n") == b"RELEASED\r\n"
    got = [conn.cmd(b"reserve-with-timeout 0\r\n") for _ in range(4)]
    assert got == [
        b"RESERVED 4 1\r\nd\r\n",
        b"RESERVED 1 1\r\na\r\n",
        b"RESERVED 2 1\r\nb\r\n",
        b"RESERVED 3 1\r\nc\r\n",
    ]


def test_delayed_jobs_are_ordered_by_deadline_then_id(conn: RawConnection) -> None:
    """peek-delayed and kick take the earliest deadline; equal deadlines go by id."""
    conn.send(put_cmd(b"a", delay=500) + put_cmd(b"b", delay=100) + put_cmd(b"c", delay=100))
    assert conn.replies(3) == [b"INSERTED %d\r\n" % i for i in range(1, 4)]
    assert conn.cmd(b"peek-delayed\r\n") == b"FOUND 2 1\r\nb\r\n"
    assert conn.cmd(b"kick 1\r\n") == b"KICKED 1\r\n"
    assert conn.cmd(b"peek-ready\r\n") == b"FOUND 2 1\r\nb\r\n"
    assert conn.cmd(b"peek-delayed\r\n") == b"FOUND 3 1\r\nc\r\n"


def test_buried_jobs_are_kicked_in_bury_order(conn: RawConnection) -> None:
    """Buried jobs are FIFO by bury time, whatever their ids or priorities."""
    conn.send(put_cmd(b"a", pri=1) + put_cmd(b"b", pri=9) + put_cmd(b"c", pri=5))
    assert conn.replies(3) == [b"INSERTED %d\r\n" % i for i in range(1, 4)]
    for job_id, body in ((3, b"c"), (1, b"a"), (2, b"b")):
        _reserve_bury(conn, job_id, body)
    assert conn.cmd(b"peek-buried\r\n") == b"FOUND 3 1\r\nc\r\n"
    assert conn.cmd(b"kick 2\r\n") == b"KICKED 2\r\n"
    assert conn.cmd(b"peek-buried\r\n") == b"FOUND 2 1\r\nb\r\n"


def test_kick_takes_buried_jobs_before_delayed_ones(conn: RawConnection) -> None:
    """kick n kicks only buried jobs while any exist; then delayed ones, earliest first."""
    conn.send(put_cmd(b"a", delay=100) + put_cmd(b"b") + put_cmd(b"c") + put_cmd(b"d", delay=50))
    assert conn.replies(4) == [b"INSERTED %d\r\n" % i for i in range(1, 5)]
    _reserve_bury(conn, 2, b"b")
    _reserve_bury(conn, 3, b"c")
    assert conn.cmd(b"kick 10\r\n") == b"KICKED 2\r\n"
    assert conn.cmd(b"stats-tube default\r\n").count(b"current-jobs-delayed: 2\n") == 1
    assert conn.cmd(b"kick 1\r\n") == b"KICKED 1\r\n"
    assert stats_dict(conn.cmd(b"stats-job 4\r\n"))["state"] == "ready"
    assert conn.cmd(b"kick 10\r\n") == b"KICKED 1\r\n"
    assert conn.cmd(b"kick 10\r\n") == b"KICKED 0\r\n"


def test_kick_acts_on_the_used_tube_only_but_kick_job_on_any_tube(conn: RawConnection) -> None:
    """kick looks at the used tube; kick-job finds a buried or delayed job anywhere."""
    assert conn.cmd(b"use other\r\n") == b"USING other\r\n"
    conn.send(put_cmd(b"a") + put_cmd(b"b", delay=100))
    assert conn.replies(2) == [b"INSERTED 1\r\n", b"INSERTED 2\r\n"]
    _reserve_bury(conn, 1, b"a")
    assert conn.cmd(b"use default\r\n") == b"USING default\r\n"
    assert conn.cmd(b"kick 10\r\n") == b"KICKED 0\r\n"
    assert conn.cmd(b"peek-buried\r\n") == NOT_FOUND
    assert conn.cmd(b"kick-job 1\r\n") == b"KICKED\r\n"
    assert conn.cmd(b"kick-job 2\r\n") == b"KICKED\r\n"
    assert conn.cmd(b"stats-tube other\r\n").count(b"current-jobs-ready: 2\n") == 1


def test_peek_sees_any_state_in_any_tube_but_peek_state_looks_at_the_used_tube(
    conn: RawConnection,
) -> None:
    """peek <id> finds ready, delayed, buried and reserved jobs in any tube; peek-ready,
    peek-delayed and peek-buried only look at the used tube."""
    assert conn.cmd(b"use t1\r\n") == b"USING t1\r\n"
    conn.send(put_cmd(b"r") + put_cmd(b"d", delay=100) + put_cmd(b"b") + put_cmd(b"v"))
    assert conn.replies(4) == [b"INSERTED %d\r\n" % i for i in range(1, 5)]
    _reserve_bury(conn, 3, b"b")
    assert conn.cmd(b"reserve-job 4\r\n") == b"RESERVED 4 1\r\nv\r\n"
    assert conn.cmd(b"use t2\r\n") == b"USING t2\r\n"
    for job_id, body in ((1, b"r"), (2, b"d"), (3, b"b"), (4, b"v")):
        assert conn.cmd(b"peek %d\r\n" % job_id) == b"FOUND %d 1\r\n%s\r\n" % (job_id, body)
    for line in (b"peek-ready\r\n", b"peek-delayed\r\n", b"peek-buried\r\n"):
        assert conn.cmd(line) == NOT_FOUND
    assert conn.cmd(b"use t1\r\n") == b"USING t1\r\n"
    assert conn.cmd(b"peek-ready\r\n") == b"FOUND 1 1\r\nr\r\n"
    assert conn.cmd(b"peek-delayed\r\n") == b"FOUND 2 1\r\nd\r\n"
    assert conn.cmd(b"peek-buried\r\n") == b"FOUND 3 1\r\nb\r\n"


def test_reserve_job_ignores_watches_and_pauses(conn: RawConnection) -> None:
    """reserve-job takes a job from an unwatched, paused tube."""
    assert conn.cmd(b"use hidden\r\n") == b"USING hidden\r\n"
    assert conn.cmd(put_cmd(b"h")) == b"INSERTED 1\r\n"
    assert conn.cmd(b"pause-tube hidden 3600\r\n") == b"PAUSED\r\n"
    assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"TIMED_OUT\r\n"
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\nh\r\n"


def test_reserve_job_never_answers_deadline_soon(conn: RawConnection) -> None:
    """Holding a ttr-1 job (safety margin at once), reserve-job still reserves."""
    conn.send(put_cmd(b"a", ttr=1) + put_cmd(b"b", ttr=1))
    assert conn.replies(2) == [b"INSERTED 1\r\n", b"INSERTED 2\r\n"]
    assert conn.cmd(b"reserve-job 1\r\n") == b"RESERVED 1 1\r\na\r\n"
    assert conn.cmd(b"reserve-job 2\r\n") == b"RESERVED 2 1\r\nb\r\n"


def test_paused_tube_still_allows_peek_and_kick(conn: RawConnection) -> None:
    """A pause only holds back reserves."""
    conn.send(put_cmd(b"a") + put_cmd(b"b", delay=100))
    assert conn.replies(2) == [b"INSERTED 1\r\n", b"INSERTED 2\r\n"]
    assert conn.cmd(b"pause-tube default 3600\r\n") == b"PAUSED\r\n"
    assert conn.cmd(b"peek-ready\r\n") == b"FOUND 1 1\r\na\r\n"
    assert conn.cmd(b"kick 1\r\n") == b"KICKED 1\r\n"
    assert conn.cmd(b"reserve-with-timeout 0\r\n") == b"TIMED_OUT\r\n"


def test_delete_works_on_ready_delayed_buried_and_own_reserved_jobs(conn: RawConnection) -> None:
    """delete needs no reservation except against another connection's."""
    conn.send(put_cmd(b"r") + put_cmd(b"d", delay=100) + put_cmd(b"b") + put_cmd(b"v"))
    assert conn.replies(4) == [b"INSERTED %d\r\n" % i for i in range(1, 5)]
    _reserve_bury(conn, 3, b"b")
    assert conn.cmd(b"reserve-job 4\r\n") == b"RESERVED 4 1\r\nv\r\n"
    for job_id in range(1, 5):
        assert conn.cmd(b"delete %d\r\n" % job_id) == b"DELETED\r\n"
        assert conn.cmd(b"delete %d\r\n" % job_id) == NOT_FOUND


def test_release_bury_and_touch_need_the_reserving_connection(server: ServerTarget) -> None:
    """Another connection's release, bury and touch of a reserved job are NOT_FOUND."""
    with server.connect() as owner, server.connect() as other:
        assert owner.cmd(put_cmd(b"a", ttr=100)) == b"INSERTED 1\r\n"
        assert owner.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
        for line in (b"release 1 0 0\r\n", b"bury 1 0\r\n", b"touch 1\r\n", b"delete 1\r\n"):
            assert other.cmd(line) == NOT_FOUND, line
        assert owner.cmd(b"touch 1\r\n") == b"TOUCHED\r\n"
        assert owner.cmd(b"bury 1 7\r\n") == b"BURIED\r\n"
        assert stats_dict(owner.cmd(b"stats-job 1\r\n"))["pri"] == "7"


def test_touch_release_and_bury_of_an_unreserved_job_are_not_found(conn: RawConnection) -> None:
    """Only reserved jobs can be touched, released or buried."""
    assert conn.cmd(put_cmd(b"a")) == b"INSERTED 1\r\n"
    for line in (b"touch 1\r\n", b"release 1 0 0\r\n", b"bury 1 0\r\n"):
        assert conn.cmd(line) == NOT_FOUND, line


def test_release_with_delay_makes_the_job_delayed_with_its_new_priority(
    conn: RawConnection,
) -> None:
    """release <id> <pri> <delay> sets the priority and, with a delay, the delayed state."""
    assert conn.cmd(put_cmd(b"a", pri=10, ttr=100)) == b"INSERTED 1\r\n"
    assert conn.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
    assert conn.cmd(b"release 1 20 100\r\n") == b"RELEASED\r\n"
    stats = stats_dict(conn.cmd(b"stats-job 1\r\n"))
    assert (stats["state"], stats["pri"], stats["delay"], stats["releases"]) == (
        "delayed",
        "20",
        "100",
        "1",
    )


def test_closing_a_connection_releases_its_jobs_without_counting_a_release(
    server: ServerTarget,
) -> None:
    """A reservation given back by a close changes no counter (releases, cmd-release)."""
    with server.connect() as producer:
        assert producer.cmd(put_cmd(b"a", ttr=100)) == b"INSERTED 1\r\n"
        with server.connect() as worker:
            assert worker.cmd(b"reserve\r\n") == b"RESERVED 1 1\r\na\r\n"
        assert producer.cmd(b"reserve-with-timeout 1\r\n") == b"RESERVED 1 1\r\na\r\n"
        job = stats_dict(producer.cmd(b"stats-job 1\r\n"))
        assert (job["reserves"], job["releases"], job["timeouts"]) == ("2", "0", "0")
        stats = stats_dict(producer.cmd(b"stats\r\n"))
        assert (stats["cmd-release"], stats["job-timeouts"]) == ("0", "0")


def test_job_goes_to_a_waiter_of_its_own_tube(server: ServerTarget) -> None:
    """With waiters on different tubes, a job put in tube b wakes the waiter watching b."""
    with server.connect() as on_a, server.connect() as on_b, server.connect() as producer:
        for conn, tube in ((on_a, b"a"), (on_b, b"b")):
            assert conn.cmd(b"watch " + tube + b"\r\n") == b"WATCHING 2\r\n"
            assert conn.cmd(b"ignore default\r\n") == b"WATCHING 1\r\n"
            conn.send(b"reserve\r\n")
        _wait_for_waiting(producer, 2)
        assert producer.cmd(b"use b\r\n") == b"USING b\r\n"
        assert producer.cmd(put_cmd(b"j", ttr=10)) == b"INSERTED 1\r\n"
        assert on_b.reply() == b"RESERVED 1 1\r\nj\r\n"
        on_a.assert_silent(0.05)


def test_waiters_are_served_in_swap_remove_rotation(server: ServerTarget) -> None:
    """Four waiters w1..w4 on one tube get four jobs in ms_take order: w1, w2, w4, w3."""
    with server.connect() as producer:
        waiters = [server.connect() for _ in range(4)]
        try:
            for count, waiter in enumerate(waiters, start=1):
                waiter.send(b"reserve\r\n")
                _wait_for_waiting(producer, count)
            producer.send(b"".join(put_cmd(b"%d" % i, ttr=10) for i in range(1, 5)))
            assert producer.replies(4) == [b"INSERTED %d\r\n" % i for i in range(1, 5)]
            got = [waiter.reply() for waiter in waiters]
            assert got == [
                b"RESERVED 1 1\r\n1\r\n",
                b"RESERVED 2 1\r\n2\r\n",
                b"RESERVED 4 1\r\n4\r\n",
                b"RESERVED 3 1\r\n3\r\n",
            ]
        finally:
            for waiter in waiters:
                waiter.close()
