"""How a Redis store's records travel: hash fields out, hash replies and script replies back.

No I/O here: the store's scripts send what these functions build and hand back what Redis
answered. Fields are written as a flat field/value list (optional ones left out); reads come
back as HGETALL-style pairs, as values in :data:`FIELD_ORDER`, or as one status line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kqueue.errors import StoreError
from kqueue.stores.base import BrokerRef, JobRecord, RecordState, RecordStatus, UniqueClaim


def encode_record(record: JobRecord) -> list[str | bytes | int | float]:
    """The hash fields of a record, as a flat field/value list (optional fields left out)."""
    fields: list[str | bytes | int | float] = [
        "job_type", record.job_type,
        "payload", record.payload,
        "codec", record.codec,
        "priority", record.priority,
        "delay", repr(float(record.delay)),
        "ttr", record.ttr,
        "created_at", repr(float(record.created_at)),
        "attempts", record.attempts,
        "state", record.state,
        "updated_at", repr(float(record.updated_at)),
    ]  # fmt: skip
    if record.last_error is not None:
        fields += ["last_error", record.last_error.encode("utf-8", "backslashreplace")]
    if record.ref is not None:
        fields += ["ref_server", record.ref.server_id, "ref_job", record.ref.job_id]
    if record.unique_until_start is not None:
        fields += ["unique_until_start", record.unique_until_start]
    return fields


def decode_record(key: str, fields: dict[bytes, bytes]) -> JobRecord:
    """Rebuild a record from its hash (as HGETALL returns it), filling the instance's
    ``__dict__`` at once as ``new_record`` does (a worker decodes one per whole read)."""
    text = {name: value.decode() for name, value in fields.items() if name != b"payload"}
    ref = None
    if b"ref_server" in text:
        ref = BrokerRef(text[b"ref_server"], int(text[b"ref_job"]))
    record: JobRecord = object.__new__(JobRecord)
    record.__dict__.update(
        key=key,
        job_type=text[b"job_type"],
        payload=fields[b"payload"],
        codec=text[b"codec"],
        priority=int(text[b"priority"]),
        delay=float(text[b"delay"]),
        ttr=int(text[b"ttr"]),
        created_at=float(text[b"created_at"]),
        attempts=int(text[b"attempts"]),
        last_error=text.get(b"last_error"),
        ref=ref,
        state="buried" if text[b"state"] == "buried" else "enqueued",
        updated_at=float(text[b"updated_at"]),
        unique_until_start=text.get(b"unique_until_start"),
    )
    return record


FIELD_ORDER = (
    "job_type", "payload", "codec", "priority", "delay", "ttr", "created_at", "attempts",
    "last_error", "ref_server", "ref_job", "state", "updated_at", "unique_until_start",
)  # fmt: skip


def record_from_values(key: str, values: list[bytes | None]) -> JobRecord:
    """Rebuild a record from its hash's values in :data:`FIELD_ORDER` (as SCAN_FIELDS
    returns them), filling the instance's ``__dict__`` at once as ``new_record`` does."""
    (job_type, payload, codec, priority, delay, ttr, created_at, attempts, last_error,
     server, job, state, updated_at, unique) = values  # fmt: skip
    assert job_type is not None and payload is not None and codec is not None
    record: JobRecord = object.__new__(JobRecord)
    record.__dict__.update(
        key=key,
        job_type=job_type.decode(),
        payload=payload,
        codec=codec.decode(),
        priority=int(priority or 0),
        delay=float(delay or 0),
        ttr=int(ttr or 0),
        created_at=float(created_at or 0),
        attempts=int(attempts or 0),
        last_error=None if last_error is None else last_error.decode(),
        ref=None if server is None else BrokerRef(server.decode(), int(job or 0)),
        state="buried" if state == b"buried" else "enqueued",
        updated_at=float(updated_at or 0),
        unique_until_start=None if unique is None else unique.decode(),
    )
    return record


def status_of(line: bytes) -> RecordStatus:
    """A record's status from its line of STATUS_MANY (or CHECKED_MANY)."""
    attempts, state, server, job = line.decode().split(" ")
    ref = BrokerRef(server, int(job)) if server else None
    return RecordStatus(int(attempts), "buried" if state == "buried" else "enqueued", ref)


def pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A flat field/value reply (HGETALL's) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def shared_fields(records: Sequence[JobRecord]) -> list[str | int] | None:
    """The fields that every record shares, when the packed put script can write them all:
    new records (no reference or error) alike in everything but key, payload and codec."""
    first = records[0]
    shared = (
        first.job_type, first.priority, first.delay, first.ttr, first.created_at,
        first.attempts, first.state, first.updated_at,
    )  # fmt: skip
    for r in records:
        mine = (
            r.job_type, r.priority, r.delay, r.ttr, r.created_at, r.attempts, r.state,
            r.updated_at,
        )  # fmt: skip
        if mine != shared or r.ref is not None or r.last_error is not None:
            return None
        if r.unique_until_start is not None:
            return None
    return [
        first.job_type, first.priority, repr(float(first.delay)), first.ttr,
        repr(float(first.created_at)), first.attempts, first.state,
        repr(float(first.updated_at)),
    ]  # fmt: skip


def holders(records: Sequence[JobRecord], reply: list[Any]) -> list[str | None]:
    """The holders a put_unique script answered, or StoreError for a record key it found."""
    if int(reply[0]):
        key = records[int(reply[0]) - 1].key
        raise StoreError(f"a record with key {key!r} already exists; nothing was written")
    return [holder.decode() or None for holder in reply[1:]]


def claim_args(claim: UniqueClaim | None, now: float) -> list[str | int]:
    """until, expires and time to live in ms (a minute past the expiry) of a claim."""
    if claim is None:
        return ["", "", ""]
    if claim.expires_at is None:
        return [claim.until, "", ""]
    ttl_ms = max(1, int((claim.expires_at - now) * 1000)) + 60_000
    return [claim.until, repr(float(claim.expires_at)), ttl_ms]


def ref_args(ref: BrokerRef | None) -> list[str | int]:
    """A reference as three script arguments: whether there is one, its server, its job."""
    return ["0", "", ""] if ref is None else ["1", ref.server_id, ref.job_id]


def attempt_args(
    attempts: int, last_error: str | None, state: RecordState, now: float
) -> list[str | bytes | int | float]:
    """The arguments of RECORD_ATTEMPT (and the first of RECORD_FAILURE): the count, whether
    there is an error and its bytes, the state and the time."""
    error: list[str | bytes] = (
        ["0", ""] if last_error is None else ["1", last_error.encode("utf-8", "backslashreplace")]
    )
    return [attempts, *error, state, repr(float(now))]
