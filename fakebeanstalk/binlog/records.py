"""The byte format of beanstalkd 1.12's binlog files (``binlog.N``), read and written.

A file starts with the format version as a native ``int`` (7 for 1.12; version 5 files of
older releases are read too). Then records follow, each one:

- ``namelen``: a native ``int`` (``size_t`` in version 5). 0 marks a *short* record, an
  update of a job already written in full; otherwise the tube name follows (no NUL);
- the job's ``Jobrec`` struct as the C compiler lays it out on x86-64 (80 bytes with
  padding; 77 packed-to-the-last-field bytes in version 5, times in microseconds);
- in a full record only, the body *including* its trailing ``\\r\\n``.

A record whose id is 0 (the zeros of a preallocated file) ends the file, as does a clean
end of file between records. Everything is little-endian, as on the platforms 1.12's
binlog is used on; the fields' meaning is in :class:`JobRecord`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

__all__ = [
    "FULL_OVERHEAD",
    "HEADER",
    "MAX_TUBE_NAME_LEN",
    "RECORD_SIZE",
    "UPDATE_SIZE",
    "Entry",
    "JobRecord",
    "ReadStop",
    "RecordState",
    "encode_full",
    "encode_short",
    "file_version",
    "iter_entries",
]

WALVER = 7
WALVER5 = 5
MAX_TUBE_NAME_LEN = 201

_INT = struct.Struct("<i")
_SIZE_T = struct.Struct("<Q")
# uint64 id, uint32 pri (+4 pad), int64 delay, int64 ttr, int32 body_size (+4 pad),
# int64 created_at, int64 deadline_at, five uint32 counters, byte state (+3 pad).
_JOBREC = struct.Struct("<QI4xqqi4xqqIIIIIB3x")
# A short record in one go: namelen 0, then the struct.
_SHORT = struct.Struct("<iQI4xqqi4xqqIIIIIB3x")
# Version 5: the same fields, times as uint64 microseconds, read up to the state byte.
_JOBREC5 = struct.Struct("<QI4xQQi4xQQIIIIIB")

HEADER = _INT.pack(WALVER)
RECORD_SIZE = _JOBREC.size
UPDATE_SIZE = _INT.size + RECORD_SIZE
"""Bytes of a short record (an update or a delete): the unit of space reservations."""
FULL_OVERHEAD = _INT.size + RECORD_SIZE
"""Bytes of a full record besides its tube name and body."""


class RecordState:
    """The ``state`` byte of a record (beanstalkd's job states)."""

    INVALID = 0  # a delete
    READY = 1
    RESERVED = 2
    BURIED = 3
    DELAYED = 4


class JobRecord(NamedTuple):
    """The persistent fields of a job (beanstalkd's ``Jobrec``).

    Times are nanoseconds of the wall clock (``gettimeofday``); ``delay`` and ``ttr`` are
    durations in nanoseconds; ``body_size`` counts the body's trailing CRLF.
    """

    id: int
    pri: int
    delay: int
    ttr: int
    body_size: int
    created_at: int
    deadline_at: int
    reserves: int
    timeouts: int
    releases: int
    buries: int
    kicks: int
    state: int


class Entry(NamedTuple):
    """One record read back: the tube name and body are None in a short record."""

    tube: str | None
    record: JobRecord
    read_body: BodyReader | None


class ReadStop(NamedTuple):
    """The end of a file's records; ``error`` says why when the end was not clean."""

    error: str | None


def encode_short(record: tuple[int, ...]) -> bytes:
    """A short record: namelen 0, then the struct (``record``: a :class:`JobRecord`'s
    fields, in order)."""
    return _SHORT.pack(0, *record)


def encode_full(tube: str, record: tuple[int, ...], body: bytes) -> bytes:
    """A full record: the tube name, the struct, the body with its CRLF."""
    name = tube.encode("latin-1")
    return _INT.pack(len(name)) + name + _JOBREC.pack(*record) + body


class BodyReader:
    """Reads the body of a full record, when the replay decides to (as beanstalkd does)."""

    __slots__ = ("_cursor", "_size")

    def __init__(self, cursor: _Cursor, size: int) -> None:
        self._cursor = cursor
        self._size = size

    def __call__(self) -> bytes | None:
        """The body bytes (CRLF included), or None at a truncated file."""
        if self._size < 0:
            return None
        return self._cursor.take(self._size)


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes | None:
        end = self.pos + size
        if end > len(self.data):
            self.pos = len(self.data)
            return None
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk


def file_version(data: bytes) -> int | None:
    """The format version of a file's bytes, if it is one this module reads."""
    if len(data) < _INT.size:
        return None
    (number,) = _INT.unpack_from(data)
    return number if number in (WALVER, WALVER5) else None


def iter_entries(data: bytes, version: int) -> Iterator[Entry | ReadStop]:
    """The records of one file's bytes (of a :func:`file_version`), then one
    :class:`ReadStop`. The body of a full entry must be read or left before the next."""
    cursor = _Cursor(data)
    cursor.pos = _INT.size
    if version == WALVER:
        yield from _records(cursor, _INT, _JOBREC, 1)
    else:
        yield from _records(cursor, _SIZE_T, _JOBREC5, 1000)


def _records(
    cursor: _Cursor, namelen_format: struct.Struct, rec_format: struct.Struct, scale: int
) -> Iterator[Entry | ReadStop]:
    while True:
        raw = cursor.take(namelen_format.size)
        if raw is None:  # a clean end between records, even mid-integer
            yield ReadStop(None)
            return
        (namelen,) = namelen_format.unpack(raw)
        if namelen >= MAX_TUBE_NAME_LEN or namelen < 0:
            yield ReadStop(f"namelen {namelen} out of range")
            return
        name = cursor.take(namelen)
        fields = cursor.take(rec_format.size)
        if name is None or fields is None:
            yield ReadStop("unexpected EOF")
            return
        record = _scaled(JobRecord(*rec_format.unpack(fields)), scale)
        if record.id == 0:  # the zeros after the last record of a preallocated file
            yield ReadStop(None)
            return
        if namelen == 0:
            yield Entry(None, record, None)
        else:
            tube = name.decode("latin-1")
            yield Entry(tube, record, BodyReader(cursor, record.body_size))


def _scaled(record: JobRecord, scale: int) -> JobRecord:
    if scale == 1:
        return record
    return record._replace(
        delay=record.delay * scale,
        ttr=record.ttr * scale,
        created_at=record.created_at * scale,
        deadline_at=record.deadline_at * scale,
    )
