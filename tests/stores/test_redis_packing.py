"""The store packs its script calls with hiredis itself: the same bytes redis-py sends."""

from __future__ import annotations

from typing import Any

import pytest
from redis.connection import HiredisRespSerializer

from kqueue.stores import _redis_wire
from tests.servers import missing_service


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 1, "kq:r:0123", "server", "12"),
        ("EVALSHA", "b" * 40, 2, "kq:idx", "kq:t:mail", "kq:", b'{"to": "\xe2\x98\x83"}', 7, 2.5),
        ("EVALSHA", "c" * 40, 0, "", b"", "1764770000.123", -1),
    ],
    ids=["status read", "bytes, int and float", "empty values"],
)
def test_a_script_call_is_packed_as_redis_py_packs_it(args: tuple[object, ...]) -> None:
    packer = _redis_wire.pack_command
    if packer is None:
        missing_service("hiredis is not installed: redis-py packs every call itself")
    assert packer is not None
    serializer: Any = HiredisRespSerializer()
    assert packer(args) == b"".join(serializer.pack(*args))
