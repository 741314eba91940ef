"""Pipelined beanstalkd commands on the real server, and a connection that drops mid-burst."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kqueue.beanstalk import BeanstalkConnection, Pipeline
from kqueue.errors import BrokerConnectionError, JobTooBigError
from kqueue.serialization import decode_body, encode_body
from tests.servers import BeanstalkdProcess


@pytest.fixture
def conn(beanstalkd: BeanstalkdProcess) -> Iterator[BeanstalkConnection]:
    connection = BeanstalkConnection(beanstalkd.host, beanstalkd.port, command_timeout=5)
    yield connection
    connection.close()


def test_pipelined_puts_get_their_ids_in_order(conn: BeanstalkConnection) -> None:
    pipe = Pipeline(conn)
    pipe.use("piped")
    ids = [pipe.put(b"job %d" % n, priority=1, delay=0, ttr=30) for n in range(500)]
    pipe.execute()
    assert [slot.result() for slot in ids] == list(range(1, 501))
    conn.watch("piped")
    with Pipeline(conn) as burst:
        reserved = [burst.reserve_nowait() for _ in range(501)]
    jobs = [slot.result() for slot in reserved]
    assert [job.body for job in jobs if job is not None] == [b"job %d" % n for n in range(500)]
    assert jobs[-1] is None  # the 501st found nothing ready: TIMED_OUT, not an error


def test_an_error_reply_fails_only_its_own_command(conn: BeanstalkConnection) -> None:
    pipe = Pipeline(conn)
    first = pipe.put(b"ok", priority=1, delay=0, ttr=30)
    too_big = pipe.put(b"x" * 70_000, priority=1, delay=0, ttr=30)
    missing = pipe.delete(999_999)
    last = pipe.put(b"ok too", priority=1, delay=0, ttr=30)
    pipe.execute()
    assert first.result() == 1
    with pytest.raises(JobTooBigError):
        too_big.result()
    assert missing.result() is False
    assert last.result() == 2


_BODY = b"---\nid: scripted\n"
_STATS_REPLY = b"OK %d\r\n%s\r\n" % (len(_BODY), _BODY)


def _server_answering(replies: bytes, then_close: bool) -> tuple[socket.socket, threading.Thread]:
    """A listener that answers the ``stats`` a connection asks when it connects, then reads a
    burst, sends ``replies``, then closes (or hangs)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        peer, _ = listener.accept()
        peer.recv(65536)
        peer.sendall(_STATS_REPLY)
        peer.recv(65536)
        peer.sendall(replies)
        if then_close:
            peer.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_dropped_connection_fails_every_command_still_in_flight() -> None:
    listener, thread = _server_answering(b"INSERTED 1\r\nINSERTED 2\r\n", then_close=True)
    port = listener.getsockname()[1]
    conn = BeanstalkConnection("127.0.0.1", port, command_timeout=5)
    try:
        pipe = Pipeline(conn)
        slots = [pipe.put(b"x", priority=1, delay=0, ttr=30) for _ in range(5)]
        with pytest.raises(BrokerConnectionError):
            pipe.execute()
        assert [slot.result() for slot in slots[:2]] == [1, 2]  # answered before the drop
        for slot in slots[2:]:
            assert slot.done
            with pytest.raises(BrokerConnectionError):
                slot.result()
        assert not conn.connected
    finally:
        conn.close()
        listener.close()
        thread.join(5)


def test_decode_body_parses_the_stored_with_copy_mode() -> None:
    key = "0123456789abcdef0123456789abcdef"
    raw = encode_body("s", key=key, codec="json", priority=5, ttr=9, job_type="t", payload=b"1")
    body = decode_body(raw)
    assert body is not None
    assert (body.mode, body.key, body.payload, body.stored) == ("s", key, b"1", True)
