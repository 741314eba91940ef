"""Raw byte scripts sent to the real beanstalkd and to the fake: replies must be identical.

These cover parsing corners read from beanstalkd's sources (strtol/strtoul arguments, the
224-byte line buffer, a lone CR). The conformance suite covers the documented behaviours.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from fakebeanstalk import FakeBeanstalkServer
from tests.servers import BeanstalkdProcess

SCRIPTS = {
    "reserve-with-timeout junk is 0": b"reserve-with-timeout abc\r\n",
    "reserve-with-timeout trailing junk": b"put 0 0 1 1\r\nx\r\nreserve-with-timeout 0x\r\n",
    "reserve-with-timeout overflow": b"reserve-with-timeout 99999999999999999999\r\n",
    "reserve-with-timeout int wrap": b"reserve-with-timeout 4294967296\r\n",
    "kick parsing": b"kick -1\r\nkick 1x\r\nkick  \r\nkick 4294967296\r\nkick +2\r\nkick\r\n",
    "kick overflow": b"kick 18446744073709551616\r\nkick -18446744073709551615\r\n",
    "lone CR holds the line": b"stats\rx\r\nlist-tube-used\r\n"
    + b"y" * 300
    + b"\r\nlist-tubes\r\n",
    "225-byte line swallows the next": b"a" * 223 + b"\r\nlist-tube-used\r\nlist-tubes\r\n",
    "224-byte line is a line": b"use " + b"b" * 218 + b"\r\nlist-tube-used\r\n",
    "pause-tube glued name": (
        b"pause-tubedefault 0\r\npause-tube -x 1\r\npause-tube  default  1\r\n"
    ),
    "tube name trailing space": b"use foo \r\nwatch  foo\r\nignore foo\r\nstats-tube foo\r\n",
    "put garbage counts": b"put 1 0 1 2 x\r\nhi\r\nput 1 0 1 2\r\nhi\r\n",
    "empty and NUL lines": b"\r\nst\x00ats\r\nreserve-job\r\nstats-job\r\nstats-tube\r\n",
    "id overflow": b"peek 18446744073709551616\r\npeek 18446744073709551615\r\ndelete -1\r\n",
    "release and bury formats": b"release 1 2\r\nrelease 1 2 3 \r\nbury 1\r\nbury 1 2 3\r\n",
    "put field limits": (
        b"put 4294967296 0 1 0\r\n\r\nput 0 4294967296 1 0\r\n\r\nput 0 0 0 0\r\n\r\n"
    ),
    "ignore unknown tube": (
        b"ignore nope\r\nignore default\r\nwatch a\r\nwatch a\r\nignore default\r\n"
        b"list-tubes-watched\r\nlist-tubes\r\n"
    ),
    "bare newline is not a line end": b"list-tubes\nlist-tubes\r\n",
}

# Volatile fields, and total-connections: the real server's start-up probe connected once.
_VOLATILE = re.compile(
    rb"(pid|rusage-utime|rusage-stime|id|hostname|uptime|total-connections): [^\n]*\n"
)


def _run(address: tuple[str, int], script: bytes) -> bytes:
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(script + b"stats\r\n")
        sock.settimeout(0.15)
        out = b""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
    masked = _VOLATILE.sub(lambda m: m.group(1) + b": *\n", out)
    return re.sub(rb"OK \d+\r\n(---\ncurrent-jobs)", rb"OK *\r\n\1", masked)


@pytest.mark.parametrize("script", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_fake_answers_like_the_real_server(
    script: bytes, beanstalkd: BeanstalkdProcess, fakebeanstalk: FakeBeanstalkServer
) -> None:
    assert _run(fakebeanstalk.address, script) == _run(beanstalkd.address, script)
