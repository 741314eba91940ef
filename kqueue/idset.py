"""JobIdSet: the beanstalkd job ids one recovery pass has put, in a bitmap.

A pass putting back the jobs an empty restart lost gets ids from 1 up, the same ids the lost
records still name; a record of the gone server whose id the pass itself has put since cannot
find its own job under it, so the pass skips that peek. One bit per id from the first id put,
so a pass that puts a million jobs holds about 125 kB, not the ids themselves.
"""

from __future__ import annotations

MAX_SPAN = 1 << 29
"""The most ids a set spans (64 MiB of bits): ids further from the first are not kept (a
caller then asks the server, as without the set)."""


class JobIdSet:
    """A set of job ids, kept as bits from the first id added."""

    def __init__(self) -> None:
        self._first: int | None = None
        self._bits = bytearray()

    def add(self, job_id: int) -> None:
        """Remember ``job_id`` (ignored when below the first id or too far from it)."""
        if self._first is None:
            self._first = job_id
        offset = job_id - self._first
        if offset < 0 or offset >= MAX_SPAN:
            return
        byte = offset >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        self._bits[byte] |= 1 << (offset & 7)

    def __contains__(self, job_id: int) -> bool:
        if self._first is None:
            return False
        offset = job_id - self._first
        byte = offset >> 3
        return offset >= 0 and byte < len(self._bits) and bool(self._bits[byte] >> (offset & 7) & 1)
