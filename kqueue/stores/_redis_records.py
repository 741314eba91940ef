"""A Redis store's record operations: put, read, delete, swap references, record attempts.

Each batch operation is one Lua script call; the ``*_call`` methods build it without I/O, so
that the asyncio store runs the same call on its own client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from kqueue.errors import StoreError
from kqueue.stores import _redis_codec as codec
from kqueue.stores import _redis_wire as wire
from kqueue.stores._common import one_new_server, one_server_pair
from kqueue.stores._redis_core import RedisStoreCore
from kqueue.stores._redis_wire import ScriptCall
from kqueue.stores.base import (
    MAX_FAILURES,
    AttemptFailure,
    BrokerRef,
    JobRecord,
    RecordState,
    RecordStatus,
    RefSwap,
    decode_failures,
    encode_failures,
)


def _nothing() -> None:
    pass


def _is_one(reply: Any) -> bool:
    return int(reply) == 1


class RedisRecords(RedisStoreCore):
    """The record operations of :class:`~kqueue.stores.redis.RedisStore`."""

    def put_many(self, records: Sequence[JobRecord]) -> None:
        """Write several new records atomically in one script call, all or none."""
        call = self.put_many_call(records)
        if call is not None:
            self.execute(call)

    def put_many_call(self, records: Sequence[JobRecord]) -> ScriptCall | None:
        """:meth:`put_many` as a script call (None: nothing to write); checked first."""
        if not records:
            return None
        keys = [record.key for record in records]
        if len(set(keys)) != len(keys):
            raise StoreError("put_many got the same key twice; nothing was written")
        self._check_sizes(records)

        def check(duplicate: Any) -> None:
            if int(duplicate):
                key = records[int(duplicate) - 1].key
                raise StoreError(f"a record with key {key!r} already exists; nothing was written")

        shared = codec.shared_fields(records)
        if shared is not None:
            args: list[str | bytes | int | float] = [self._prefix, *shared]
            for r in records:
                args += [r.key, r.payload, r.codec]
            script_keys = [self._index, self._type_index(records[0].job_type)]
            return ScriptCall("put", self._put_packed, script_keys, args, check)
        script_keys = [self._index]
        args = [len(records), self._prefix]
        for record in records:
            script_keys += [self._record_key(record.key), self._type_index(record.job_type)]
            fields = codec.encode_record(record)
            server = "" if record.ref is None else "=" + record.ref.server_id
            args += [record.key, server, len(fields), *fields]
        return ScriptCall("put", self._put_many, script_keys, args, check)

    def put_many_started(self, records: Sequence[JobRecord]) -> Callable[[], None]:
        """:meth:`put_many` sent now on a second connection of this thread; the function
        returned reads its outcome (raising as put_many would). The producer writes its next
        batch so while this batch's puts go out; call the function before the next start
        (one left uncalled has its connection dropped, reply unread)."""
        call = self.put_many_call(records)
        if call is None:
            return _nothing
        wait_args = () if self._wait is None else ("WAIT", *self._wait)
        with self._translate(call.action):
            conn: Any = getattr(self._conn("side"), "connection", None)
            if conn is None:  # nothing held (see _conn): written now
                call.decode(self._run(call.script, keys=call.keys, args=call.args, wait=True))
                return _nothing
            if getattr(self._local, "side_unread", False):
                conn.disconnect()
            wire.send_script(conn, call.script, call.keys, call.args)
        self._local.side_unread = True

        def finish() -> None:
            try:
                with self._translate(call.action):
                    reply = self._read_script(conn, call.script, call.keys, call.args, wait_args)
            finally:
                self._local.side_unread = False
            call.decode(reply)

        return finish

    def get_status_many(self, keys: Sequence[str]) -> dict[str, RecordStatus]:
        """The status of the records that exist among ``keys``, in one script call.

        The script answers with one string (a line per key), which is far cheaper to read
        than a reply of many parts.
        """
        call = self.get_status_many_call(keys)
        return {} if call is None else cast("dict[str, RecordStatus]", self.execute(call))

    def get_status_many_call(self, keys: Sequence[str]) -> ScriptCall | None:
        """:meth:`get_status_many` as a script call (None: no keys)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return None

        def decode(reply: bytes) -> dict[str, RecordStatus]:
            return {
                key: codec.status_of(line)
                for key, line in zip(unique, reply.split(b"\n"), strict=True)
                if line != b"-"
            }

        script_keys = [self._record_key(key) for key in unique]
        return ScriptCall("get_status_many", self._status_many, script_keys, [], decode)

    def get_checked_many(
        self, expected: Sequence[tuple[str, BrokerRef]]
    ) -> dict[str, JobRecord | RecordStatus]:
        """See :meth:`StoreBase.get_checked_many`: one script call, whatever the records
        name (the whole records of those naming another reference come in the same reply)."""
        call = self.get_checked_many_call(expected)
        return (
            {} if call is None else cast("dict[str, JobRecord | RecordStatus]", self.execute(call))
        )

    def get_checked_many_call(self, expected: Sequence[tuple[str, BrokerRef]]) -> ScriptCall | None:
        """:meth:`get_checked_many` as a script call (None: no keys)."""
        refs: dict[str, BrokerRef] = {}
        for key, ref in expected:
            refs.setdefault(key, ref)
        if not refs:
            return None
        unique = list(refs)

        def decode(replies: list[bytes | list[bytes]]) -> dict[str, JobRecord | RecordStatus]:
            found: dict[str, JobRecord | RecordStatus] = {}
            for key, reply in zip(unique, replies, strict=True):
                if isinstance(reply, list):
                    found[key] = codec.decode_record(key, codec.pairs(reply))
                elif reply != b"-":
                    found[key] = codec.status_of(reply)
            return found

        script_keys = [self._record_key(key) for key in unique]
        args: list[str | bytes | int | float] = []
        for ref in refs.values():
            args += [ref.server_id, str(ref.job_id)]
        return ScriptCall("get_checked_many", self._checked_many, script_keys, args, decode)

    def get(self, key: str) -> JobRecord | None:
        """The record with this key, or None."""
        with self._translate("get"):
            fields = cast("dict[bytes, bytes]", self._conn().hgetall(self._record_key(key)))
        return codec.decode_record(key, fields) if fields else None

    def get_many(self, keys: Sequence[str]) -> dict[str, JobRecord]:
        """The records that exist among ``keys``, by key, in one script call."""
        call = self.get_many_call(keys)
        return {} if call is None else cast("dict[str, JobRecord]", self.execute(call))

    def get_many_call(self, keys: Sequence[str]) -> ScriptCall | None:
        """:meth:`get_many` as a script call (None: no keys)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return None

        def decode(replies: list[list[bytes]]) -> dict[str, JobRecord]:
            return {
                key: codec.decode_record(key, codec.pairs(flat))
                for key, flat in zip(unique, replies, strict=True)
                if flat
            }

        script_keys = [self._record_key(key) for key in unique]
        return ScriptCall("get_many", self._get_many, script_keys, [], decode)

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove several records atomically in one script call; the number that existed."""
        call = self.delete_many_call(keys)
        return 0 if call is None else int(self.execute(call))

    def delete_many_call(self, keys: Iterable[str]) -> ScriptCall | None:
        """:meth:`delete_many` as a script call (None: no keys)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return None
        script_keys = [self._index, *(self._record_key(key) for key in unique)]
        return ScriptCall("delete", self._delete_many, script_keys, [self._prefix, *unique], int)

    def swap_reference(
        self, key: str, expected: BrokerRef | None, new: BrokerRef | None, *, now: float
    ) -> bool:
        """Compare-and-set the broker reference in one script; see :meth:`Store.swap_reference`."""
        args = [
            *codec.ref_args(expected),
            *codec.ref_args(new),
            repr(float(now)),
            self._prefix,
            key,
        ]
        with self._translate("swap_reference"):
            return int(self._run(self._swap, keys=[self._record_key(key)], args=args)) == 1

    def swap_references(self, swaps: Sequence[RefSwap], *, now: float) -> int:
        """Compare-and-set several references in one script call; the number that succeeded."""
        call = self.swap_references_call(swaps, now=now)
        return 0 if call is None else int(self.execute(call))

    def swap_references_call(self, swaps: Sequence[RefSwap], *, now: float) -> ScriptCall | None:
        """:meth:`swap_references` as a script call (None: no swaps)."""
        if not swaps:
            return None
        script_keys = [self._record_key(key) for key, _, _ in swaps]
        server = one_new_server(swaps)
        args: list[str | bytes | int | float] = [repr(float(now)), self._prefix]
        if server is not None:
            # New jobs (add_jobs): one job id a key instead of six values.
            job_ids = [new.job_id for _, _, new in swaps if new is not None]
            args = [server, *args, *job_ids]
            return ScriptCall("swap_references", self._set_new_refs, script_keys, args, int)
        pair = one_server_pair(swaps)
        if pair is not None:
            # Recovery's shapes: two job ids a key instead of six values.
            args += [*pair]
            for _, expected, new in swaps:
                assert expected is not None and new is not None
                args += [expected.job_id, new.job_id]
            return ScriptCall("swap_references", self._swap_between, script_keys, args, int)
        for _, expected, new in swaps:
            args += [*codec.ref_args(expected), *codec.ref_args(new)]
        return ScriptCall("swap_references", self._swap_many, script_keys, args, int)

    def record_attempt(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> bool:
        """Store the attempt count, last error and state; False if the record is gone."""
        call = self.record_attempt_call(
            key, attempts=attempts, last_error=last_error, state=state, now=now
        )
        return bool(self.execute(call))

    def record_attempt_call(
        self, key: str, *, attempts: int, last_error: str | None, state: RecordState, now: float
    ) -> ScriptCall:
        """:meth:`record_attempt` as a script call."""
        args = codec.attempt_args(attempts, last_error, state, now)
        script_keys = [self._record_key(key)]
        return ScriptCall("record_attempt", self._attempt, script_keys, args, _is_one)

    def record_failure(
        self,
        key: str,
        failure: AttemptFailure,
        *,
        attempts: int,
        last_error: str | None,
        state: RecordState,
        now: float,
    ) -> bool:
        """Store the attempt and append ``failure`` to the history, in one script."""
        entry = encode_failures([failure])[1:-1].encode("utf-8", "backslashreplace")
        args = [*codec.attempt_args(attempts, last_error, state, now), entry, MAX_FAILURES]
        with self._translate("record_failure"):
            return int(self._run(self._failure, keys=[self._record_key(key)], args=args)) == 1

    def get_failures(self, key: str) -> list[AttemptFailure]:
        """The record's failure history, oldest first (the hash's ``failure:<n>`` fields)."""
        hash_key = self._record_key(key)
        with self._translate("get_failures"):
            seq = self._conn().hget(hash_key, "failure_seq")
            if seq is None:
                return []
            last = int(seq)
            names = [f"failure:{n}" for n in range(max(1, last - MAX_FAILURES + 1), last + 1)]
            values = cast("list[bytes | None]", self._conn().hmget(hash_key, names))
        entries = b",".join(value for value in values if value is not None)
        return decode_failures(b"[" + entries + b"]")
