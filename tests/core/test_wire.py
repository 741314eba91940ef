"""Reply parsing on its own: whole replies out of a buffer that fills in pieces."""

from __future__ import annotations

import pytest

from kqueue.beanstalk.wire import MalformedReply, Reply, parse_replies


def test_whole_replies_come_out_in_order_up_to_the_limit() -> None:
    buf = bytearray(b"INSERTED 1\r\nDELETED\r\nRESERVED 7 3\r\nabc\r\nTIMED_OUT\r\n")
    replies, pos = parse_replies(buf, 0, 3)
    assert replies == [
        Reply(b"INSERTED", (b"1",)),
        Reply(b"DELETED", ()),
        Reply(b"RESERVED", (b"7", b"3"), b"abc"),
    ]
    rest, end = parse_replies(buf, pos, 10)
    assert rest == [Reply(b"TIMED_OUT", ())]
    assert end == len(buf)


def test_a_body_still_arriving_stops_before_its_reply() -> None:
    buf = bytearray(b"INSERTED 1\r\nRESERVED 9 10\r\n01234")
    replies, pos = parse_replies(buf, 0, 5)
    assert replies == [Reply(b"INSERTED", (b"1",))]
    assert pos == len(b"INSERTED 1\r\n")
    buf += b"56789\r\n"
    more, end = parse_replies(buf, pos, 5)
    assert more == [Reply(b"RESERVED", (b"9", b"10"), b"0123456789")]
    assert end == len(buf)


def test_a_body_may_hold_crlf_and_a_line_may_be_incomplete() -> None:
    buf = bytearray(b"FOUND 2 4\r\na\r\nb\r\nINSERT")
    replies, pos = parse_replies(buf, 0, 5)
    assert replies == [Reply(b"FOUND", (b"2", b"4"), b"a\r\nb")]
    assert buf[pos:] == b"INSERT"


@pytest.mark.parametrize(
    "data", [b"RESERVED 7\r\nabc\r\n", b"RESERVED 7 x\r\nabc\r\n", b"OK 3\r\nabcXY"]
)
def test_a_reply_that_breaks_the_protocol_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedReply):
        parse_replies(bytearray(data), 0, 5)


def test_replies_before_a_malformed_one_are_handed_over_first() -> None:
    buf = bytearray(b"INSERTED 7\r\nINSERTED 8\r\nOK x\r\n")
    replies, pos = parse_replies(buf, 0, 3)
    assert replies == [Reply(b"INSERTED", (b"7",)), Reply(b"INSERTED", (b"8",))]
    with pytest.raises(MalformedReply):
        parse_replies(buf, pos, 1)
