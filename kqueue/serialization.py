"""Payload codecs and the job body that travels through beanstalkd.

A payload is encoded by a codec into bytes. ``bytes``-like payloads always travel untouched
through the ``raw`` codec; anything else goes through the queue's codec (JSON by default).
pickle is never used unless an application registers such a codec itself.

The beanstalkd body is ``kq1 <mode> <key> <codec> <priority> <ttr> <job type>\\n<payload>``
where mode is ``i`` (inline: the payload follows, nothing else holds it), ``r`` (reference:
the payload lives in the bulk store under ``key``, and nothing follows the header) or ``s``
(stored, with an inline copy: the record in the store is the source of truth, and a copy of
its small payload follows, so a worker needs only to know the record still exists). Carrying
the job type, priority and ttr lets a worker run a job without asking beanstalkd about it.
Anything else in a watched tube is a foreign body.
"""

from __future__ import annotations

import json
import re
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from json.scanner import c_make_scanner  # type: ignore[attr-defined]
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from kqueue.errors import PayloadError
from kqueue.stores.base import JobRecord

BODY_MAGIC = b"kq1 "
_HEADER = re.compile(
    rb"kq1 ([irs]) ([0-9a-f]{32}) ([a-z0-9_.-]{1,32}) ([0-9]{1,10}) ([0-9]{1,10}) "
    rb"([A-Za-z0-9+/;.$_()-]{1,200})\n"
)
_CODEC_NAME = re.compile(r"[a-z0-9_.-]{1,32}")

_U32_MAX = 2**32 - 1

BodyMode = Literal["i", "r", "s"]
_MODES: dict[bytes, BodyMode] = {b"i": "i", b"r": "r", b"s": "s"}


@runtime_checkable
class Codec(Protocol):
    """Turns payloads into bytes and back. ``name`` is written into every job body."""

    name: str

    def encode(self, payload: Any) -> bytes:
        """Encode a payload; raise TypeError or ValueError for what it cannot encode."""

    def decode(self, data: bytes) -> Any:
        """Decode bytes written by :meth:`encode`."""


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class JsonCodec:
    """JSON in UTF-8: dicts, lists, strings, numbers, booleans and None. NaN is refused.

    The json module's C encoder and scanner are called directly where CPython has them (the
    same bytes and values as ``json.dumps``/``json.loads`` with these options, without their
    per-call Python layers; measured in docs/performance.md). A cyclic payload fails with
    RecursionError rather than ValueError."""

    name = "json"

    # One encoder and decoder for every call: json.dumps with options builds a new encoder
    # each time, and json.loads on bytes sniffs the encoding first.
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    _decoder = json.JSONDecoder()
    _c_encode: Any = None
    _c_scan: Any = None
    if c_make_encoder is not None and c_make_scanner is not None:
        # (markers, default, encoder, indent, key and item separators, sort_keys, skipkeys,
        # allow_nan): json.JSONEncoder.iterencode's own call, built once.
        _c_encode = c_make_encoder(
            None, _refuse, encode_basestring, None, ":", ",", False, False, False
        )
        _c_scan = c_make_scanner(_decoder)

    def encode(self, payload: Any) -> bytes:
        """Compact JSON; raises TypeError/ValueError for values JSON cannot represent."""
        if self._c_encode is None:
            return self._encoder.encode(payload).encode("utf-8")
        return "".join(self._c_encode(payload, 0)).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        """Parse UTF-8 JSON."""
        text = data.decode("utf-8")
        if self._c_scan is not None:
            try:
                value, end = self._c_scan(text, 0)
            except StopIteration:
                end = -1
            if end == len(text):
                return value
        # Whitespace around the value, or not JSON: the decoder's own answer or error.
        return self._decoder.decode(text)


class RawCodec:
    """bytes in, bytes out: binary payloads pass untouched."""

    name = "raw"

    def encode(self, payload: Any) -> bytes:
        """Accept bytes, bytearray and memoryview."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"raw codec takes bytes, not {type(payload).__name__}")
        return bytes(payload)

    def decode(self, data: bytes) -> Any:
        """Return the bytes unchanged."""
        return data


class CodecRegistry:
    """The codecs a queue can encode with and decode from, by name."""

    def __init__(self, default: Codec) -> None:
        self._raw = RawCodec()
        self.default = default
        self._by_name: dict[str, Codec] = {"json": JsonCodec(), "raw": self._raw}
        self.register(default)

    def register(self, codec: Codec) -> None:
        """Make ``codec`` available for decoding (and encoding if it is the default)."""
        if not isinstance(codec, Codec) or not _CODEC_NAME.fullmatch(str(codec.name)):
            raise PayloadError(
                f"codec {codec!r} needs a name of 1-32 chars [a-z0-9_.-], encode() and decode()"
            )
        self._by_name[codec.name] = codec

    def encode(self, payload: Any) -> tuple[str, bytes]:
        """Encode a payload with the codec that fits it: (codec name, bytes)."""
        codec: Codec = (
            self._raw if isinstance(payload, bytes | bytearray | memoryview) else self.default
        )
        try:
            return codec.name, codec.encode(payload)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise PayloadError(f"codec {codec.name!r} cannot encode the payload: {exc}") from exc

    def decode(self, codec_name: str, data: bytes) -> Any:
        """Decode bytes written by the named codec; PayloadError if unknown or corrupt."""
        codec = self._by_name.get(codec_name)
        if codec is None:
            raise PayloadError(f"unknown codec {codec_name!r}")
        try:
            return codec.decode(data)
        except Exception as exc:
            raise PayloadError(f"codec {codec_name!r} cannot decode the payload: {exc}") from exc


class Body(NamedTuple):
    """A parsed job body (a named tuple: one is built per job)."""

    mode: BodyMode
    key: str
    codec: str
    priority: int
    ttr: int
    job_type: str
    payload: bytes

    @property
    def stored(self) -> bool:
        """True when a store record backs the job (modes ``r`` and ``s``)."""
        return self.mode != "i"


def encode_body(
    mode: BodyMode,
    *,
    key: str,
    codec: str,
    priority: int,
    ttr: int,
    job_type: str,
    payload: bytes = b"",
) -> bytes:
    """Build the bytes put into beanstalkd."""
    header = f"{mode} {key} {codec} {priority} {ttr} {job_type}\n".encode()
    return BODY_MAGIC + header + payload


def record_body(record: JobRecord, *, copy_max: int = -1) -> bytes:
    """The body of a stored job: mode ``s`` with a copy of a payload of at most ``copy_max``
    bytes, else (and by default) a plain reference, mode ``r``. A job holding a unique key
    until it starts is always a plain reference: the worker reads its whole record, which
    names the key to release."""
    copy = len(record.payload) <= copy_max and record.unique_until_start is None
    return encode_body(
        "s" if copy else "r",
        key=record.key,
        codec=record.codec,
        priority=record.priority,
        ttr=record.ttr,
        job_type=record.job_type,
        payload=record.payload if copy else b"",
    )


def decode_body(body: bytes) -> Body | None:
    """Parse a job body; None for a foreign or corrupt one."""
    match = _HEADER.match(body)
    if match is None:
        return None
    mode, key, codec, priority, ttr, job_type = match.groups()
    payload = body[match.end() :]
    if mode == b"r" and payload:
        return None
    pri, seconds = int(priority), int(ttr)
    if pri > _U32_MAX or not 1 <= seconds <= _U32_MAX:
        return None  # kqueue never writes these: a corrupt or forged header
    return Body(
        _MODES[mode], key.decode(), codec.decode(), pri, seconds, job_type.decode(), payload
    )
