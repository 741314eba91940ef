"""One connection's protocol engine: beanstalkd's input framing, then command dispatch.

Framing reproduces beanstalkd's 224-byte command buffer exactly: a line ends at the first
``\\r`` of the buffer if ``\\n`` follows it; a full buffer without one is discarded, and so is
everything up to the next line end, which gets one ``BAD_FORMAT``. Bodies and discarded
bodies (``JOB_TOO_BIG``) are read by byte count. No sockets here: the transport feeds bytes
in and takes ``client.outbox`` out.
"""

from __future__ import annotations

from collections.abc import Callable

from fakebeanstalk import protocol as p
from fakebeanstalk.faults import FaultPlan
from fakebeanstalk.state import Job, ServerState
from fakebeanstalk.stats import job_fields, server_fields, tube_fields

__all__ = ["Session"]

_WANT_COMMAND = 0
_WANT_ENDLINE = 1
_WANT_DATA = 2
_BITBUCKET = 3

READ_AHEAD = 65536
"""Input buffered beyond what the current state needs; more is left in the socket."""
OUTBOX_LIMIT = 262144
"""Commands are not processed while this much output waits for a slow reader."""


class Session:
    """The protocol state of one client connection."""

    def __init__(self, state: ServerState, faults: FaultPlan | None = None) -> None:
        """Register a new client with ``state``."""
        self.state = state
        self.client = state.connect()
        self.faults = faults
        self._buf = bytearray()
        self._pos = 0
        self._mode = _WANT_COMMAND
        self._need = 0
        self._job: Job | None = None
        self._skip_reply = b""
        self.eof = False
        self.closing = False
        self.abort = False
        self.stall_until: int | None = None
        self._fault_checked = False
        self._handlers = self._command_table()

    def _command_table(self) -> dict[str, Callable[..., None]]:
        """Each command's name and the method that answers it."""
        return {
            "put": self._put,
            "peek": self._peek,
            "peek-ready": self._peek_ready,
            "peek-delayed": self._peek_delayed,
            "peek-buried": self._peek_buried,
            "reserve-with-timeout": self._reserve_timeout,
            "reserve-job": self._reserve_job,
            "reserve": self._reserve,
            "delete": self._delete,
            "release": self._release,
            "bury": self._bury,
            "kick": self._kick,
            "kick-job": self._kick_job,
            "touch": self._touch,
            "stats-job": self._stats_job,
            "stats-tube": self._stats_tube,
            "stats": self._stats,
            "use": self._use,
            "watch": self._watch,
            "ignore": self._ignore,
            "list-tubes-watched": self._list_watched,
            "list-tube-used": self._list_used,
            "list-tubes": self._list_tubes,
            "quit": self._quit,
            "pause-tube": self._pause_tube,
        }

    # -- input ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes received from the client."""
        self._buf += data

    def wants_input(self) -> bool:
        """Whether the transport should read more from the socket now."""
        if self.closing or self.eof:
            return False
        buffered = len(self._buf) - self._pos
        return buffered < READ_AHEAD or (self._mode == _WANT_DATA and buffered < self._need)

    def process(self) -> None:
        """Run buffered commands until more input, a blocking reserve or a stall is needed."""
        client = self.client
        while not self.closing and self.stall_until is None:
            if self.eof and client.outbox:
                # The peer has closed: like beanstalkd, write each reply before running the
                # next command, so that a peer gone for good stops us at the failed write.
                break
            if client.waiting:
                if not self.eof:
                    break
                self.state.stop_waiting(client)  # a half-closed waiter times out
                continue
            if len(client.outbox) > OUTBOX_LIMIT:
                break
            if not self._step():
                if self.eof:
                    self.closing = True
                break
        if self._pos > READ_AHEAD or self._pos == len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0

    def close(self) -> None:
        """The connection is gone: forget a half-read put, release reserved jobs."""
        if self._job is not None:
            self._job.partial = None
            self.state.abort_put(self._job)
            self._job = None
        self.state.disconnect(self.client)

    def _step(self) -> bool:
        buf, pos = self._buf, self._pos
        if self._mode == _WANT_DATA:
            end = pos + self._need
            if len(buf) < end:
                return False
            self._pos = end
            self._mode = _WANT_COMMAND
            job, self._job = self._job, None
            assert job is not None
            job.partial = None
            self._reply(self.state.finish_put(job, bytes(buf[pos:end])))
            return True
        if self._mode == _BITBUCKET:
            taken = min(len(buf) - pos, self._need)
            self._pos += taken
            self._need -= taken
            if self._need == 0:
                self._mode = _WANT_COMMAND
                self._reply(self._skip_reply)
                return True
            return taken > 0
        window_end = min(len(buf), pos + p.LINE_MAX)
        cr = buf.find(b"\r", pos, window_end - 1)
        if cr >= 0 and buf[cr + 1] == 0x0A:
            if self._mode == _WANT_ENDLINE:
                self._pos = cr + 2
                self._mode = _WANT_COMMAND
                self._reply(p.BAD_FORMAT)
                return True
            return self._command(bytes(buf[pos:cr]), cr + 2)
        if window_end - pos == p.LINE_MAX:
            self._pos = window_end
            self._mode = _WANT_ENDLINE
            return True
        return False

    def _command(self, line: bytes, next_pos: int) -> bool:
        try:
            command = p.parse_command(line)
        except p.ParseError as exc:
            if self._faulted(None):
                return False
            self._pos = next_pos
            self._reply(exc.reply)
            return True
        if self._faulted(command.op):
            return False
        self._pos = next_pos
        if command.op != "quit":
            self.state.count(command.op)
        self._handlers[command.op](*command.args)
        return True

    def _faulted(self, op: str | None) -> bool:
        """Apply an injected fault to this command; True when it must not run now."""
        if self.faults is None or self._fault_checked:
            self._fault_checked = False
            return False
        fault = self.faults.take(op)
        if fault is None:
            return False
        if fault.action == "close":
            self.closing = self.abort = True
            return True
        self._fault_checked = True  # run it, unchecked, once the stall ends
        self.stall_until = fault.stall_until(self.state.clock.now_ns())
        return True

    def end_stall(self) -> None:
        """The stall is over: the held command runs at the next :meth:`process`."""
        self.stall_until = None

    def _reply(self, data: bytes) -> None:
        self.state.reply(self.client, data)

    def _job_reply(self, word: bytes, job: Job | None) -> None:
        self._reply(p.NOT_FOUND if job is None else p.job_reply(word, job.id, job.body))

    def _flag_reply(self, ok: bool, word: bytes) -> None:
        self._reply(word if ok else p.NOT_FOUND)

    # -- commands ------------------------------------------------------------------------
    def _put(self, args: p.PutArgs) -> None:
        if args.size > self.state.max_job_size:
            self._mode, self._need, self._skip_reply = _BITBUCKET, args.size + 2, p.JOB_TOO_BIG
            return
        if args.garbage:
            self._reply(p.BAD_FORMAT)
            return
        self._job = self.state.begin_put(self.client, args.pri, args.delay, args.ttr)
        self._job.partial = self._partial_body
        self._mode, self._need = _WANT_DATA, args.size + 2

    def _partial_body(self) -> bytes:
        """The body received so far, then zeros (beanstalkd shows its unfilled buffer)."""
        received = bytes(self._buf[self._pos : self._pos + self._need])
        return received.ljust(self._need, b"\0")

    def _peek(self, job_id: int) -> None:
        job = self.state.jobs.get(job_id)
        if job is not None and job.partial is not None:  # a put whose body is arriving
            buffer = job.partial()
            self._reply(b"%s %d %d\r\n%s" % (p.FOUND_WORD, job_id, len(buffer) - 2, buffer))
            return
        self._job_reply(p.FOUND_WORD, self.state.find_job(job_id))

    def _peek_ready(self) -> None:
        self._job_reply(p.FOUND_WORD, self.client.use.ready.first())

    def _peek_delayed(self) -> None:
        self._job_reply(p.FOUND_WORD, self.client.use.delayed.first())

    def _peek_buried(self) -> None:
        self._job_reply(p.FOUND_WORD, next(iter(self.client.use.buried.values()), None))

    def _reserve_timeout(self, timeout: int) -> None:
        self.state.reserve(self.client, timeout)

    def _reserve(self) -> None:
        self.state.reserve(self.client, -1)

    def _reserve_job(self, job_id: int) -> None:
        self._job_reply(p.RESERVED_WORD, self.state.reserve_job(self.client, job_id))

    def _delete(self, job_id: int) -> None:
        self._flag_reply(self.state.delete(self.client, job_id), p.DELETED)

    def _release(self, job_id: int, pri: int, delay: int) -> None:
        self._flag_reply(self.state.release(self.client, job_id, pri, delay), p.RELEASED)

    def _bury(self, job_id: int, pri: int) -> None:
        self._flag_reply(self.state.bury(self.client, job_id, pri), p.BURIED)

    def _kick(self, bound: int) -> None:
        self._reply(p.kicked(self.state.kick(self.client, bound)))

    def _kick_job(self, job_id: int) -> None:
        self._flag_reply(self.state.kick_job(job_id), p.KICKED)

    def _touch(self, job_id: int) -> None:
        self._flag_reply(self.state.touch(self.client, job_id), p.TOUCHED)

    def _stats_job(self, job_id: int) -> None:
        job = self.state.jobs.get(job_id)  # an in-flight put is found too: state "invalid"
        if job is None:
            self._reply(p.NOT_FOUND)
            return
        self._reply(p.body_reply(p.stats_body(job_fields(self.state, job))))

    def _stats_tube(self, name: str) -> None:
        tube = self.state.find_tube(name)
        if tube is None:
            self._reply(p.NOT_FOUND)
            return
        self._reply(p.body_reply(p.stats_body(tube_fields(self.state, tube))))

    def _stats(self) -> None:
        self._reply(p.body_reply(p.stats_body(server_fields(self.state))))

    def _use(self, name: str) -> None:
        self.state.use(self.client, name)
        self._reply(p.using(name))

    def _watch(self, name: str) -> None:
        self._reply(p.watching(self.state.watch(self.client, name)))

    def _ignore(self, name: str) -> None:
        left = self.state.ignore(self.client, name)
        self._reply(p.NOT_IGNORED if left is None else p.watching(left))

    def _list_watched(self) -> None:
        self._reply(p.body_reply(p.list_body(t.name for t in self.client.watch)))

    def _list_used(self) -> None:
        self._reply(p.using(self.client.use.name))

    def _list_tubes(self) -> None:
        self._reply(p.body_reply(p.list_body(t.name for t in self.state.tubes)))

    def _quit(self) -> None:
        self.closing = True

    def _pause_tube(self, name: str | None, delay: int) -> None:
        if name is None:
            self._reply(p.BAD_FORMAT)
            return
        self._flag_reply(self.state.pause_tube(name, delay), p.PAUSED)
