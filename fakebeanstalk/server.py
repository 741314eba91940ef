"""The network side: TCP and unix listeners, one selector loop, per-connection buffers.

:class:`FakeBeanstalkServer` runs its loop on a background thread (``start()``) or in the
calling thread (``serve_forever()``, used by the command line). The loop never spins: it
sleeps in ``select()`` until a socket is ready, the next timer is due, or another thread
wakes it through a socketpair (to stop it, or to run a task such as a fake clock advance).
Every socket is non-blocking and every connection has its own output buffer, so a slow or
dead client never holds up the others.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable
from types import TracebackType

from fakebeanstalk import protocol as p
from fakebeanstalk.binlog.storage import DirectoryStorage, MemoryStorage, Storage
from fakebeanstalk.binlog.wal import DEFAULT_FILE_SIZE
from fakebeanstalk.clock import NS_PER_SECOND, Clock, FakeClock, SystemClock
from fakebeanstalk.errors import ServerNotRunningError, ServerStateError
from fakebeanstalk.faults import FaultMixin, FaultPlan
from fakebeanstalk.inspection import InspectionMixin
from fakebeanstalk.listeners import open_listeners
from fakebeanstalk.replay import start_state
from fakebeanstalk.session import Session
from fakebeanstalk.state import ServerState

__all__ = ["FakeBeanstalkServer"]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _Connection:
    __slots__ = ("events", "session", "sock")

    def __init__(self, sock: socket.socket, session: Session) -> None:
        self.sock = sock
        self.session = session
        self.events = 0


class FakeBeanstalkServer(InspectionMixin, FaultMixin):
    """An in-process beanstalkd 1.12 speaking the real protocol over TCP (and unix sockets).

    >>> with FakeBeanstalkServer() as server:  # doctest: +SKIP
    ...     client = greenstalk.Client(server.address)
    """

    def __init__(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        max_job_size: int = p.DEFAULT_MAX_JOB_SIZE,
        clock: Clock | None = None,
        unix_path: str | os.PathLike[str] | None = None,
        binlog_dir: str | os.PathLike[str] | None = None,
        binlog_size: int = DEFAULT_FILE_SIZE,
        fsync_ms: int | None = 50,
    ) -> None:
        """Configure; nothing listens before :meth:`start`. ``host=None``: unix socket only.
        ``binlog_dir`` is ``-b DIR`` (journal there, restore at every start), ``binlog_size``
        ``-s``, ``fsync_ms`` ``-f`` (None: ``-F``); without a directory the journal is kept
        in memory, for :meth:`restart` with ``keep_jobs``."""
        if host is None and unix_path is None:
            raise ValueError("give a host, a unix_path, or both")
        self.binlog_dir = None if binlog_dir is None else os.fspath(binlog_dir)
        self.binlog_size, self.fsync_ms = binlog_size, fsync_ms
        self._memory_binlog = MemoryStorage()
        self._host = host
        self._port = port
        self.max_job_size = max_job_size
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.unix_path = None if unix_path is None else os.fspath(unix_path)
        self.faults = FaultPlan()
        self._lock = threading.RLock()
        self._state: ServerState | None = None
        self._listeners: list[socket.socket] = []
        self._conns: dict[int, _Connection] = {}
        self._by_client: dict[int, _Connection] = {}
        self._tasks: deque[tuple[Callable[[], None], threading.Event]] = deque()
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._running = False
        self._stopped = threading.Event()

    # -- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The TCP host clients connect to."""
        return self._host if self._host is not None else ""

    @property
    def port(self) -> int:
        """The TCP port (the real one once started with ``port=0``)."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, as greenstalk.Client accepts it."""
        return (self.host, self._port)

    @property
    def running(self) -> bool:
        """Whether the server accepts connections."""
        return self._running

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeBeanstalkServer:
        """Listen, then serve on a background thread; returns once connections are accepted.

        With a ``binlog_dir`` the jobs journaled there are restored first, as beanstalkd
        does at start-up.
        """
        self._open(keep_jobs=self.binlog_dir is not None)
        self._thread = threading.Thread(target=self._loop, name="fakebeanstalk", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self, on_listening: Callable[[], None] | None = None) -> None:
        """Listen and serve in the calling thread until :meth:`request_stop` (e.g. from a
        signal handler); ``on_listening`` is called once connections are accepted."""
        self._open(keep_jobs=self.binlog_dir is not None)
        if on_listening is not None:
            on_listening()
        try:
            self._loop()
        finally:
            self._running = False
            if isinstance(self.clock, FakeClock):
                self.clock.unsubscribe(self)
            self._close_binlog()

    def stop(self) -> None:
        """Stop serving: close every connection and listener. Jobs are forgotten, but for
        what the binlog holds (with a ``binlog_dir``, the next start restores it)."""
        self._shutdown()
        self._close_binlog()

    def _close_binlog(self) -> None:
        state = self._state
        self._state = None
        if state is not None:
            state.wal.close()

    def request_stop(self) -> None:
        """Ask the loop to stop, without waiting (safe from a signal handler)."""
        self._running = False
        self._wake()

    def crash(self) -> None:
        """Like ``kill -9``: every connection dropped, nothing listens any more, and only
        what the binlog holds survives (for a later :meth:`start` or :meth:`restart`)."""
        self.stop()

    def restart(self, *, keep_jobs: bool | None = None) -> None:
        """Crash (if running) and start again on the same address.

        With ``keep_jobs`` (the default when the server has a ``binlog_dir``) the server
        comes back from its binlog, as beanstalkd 1.12 restarted with the same ``-b``
        does: jobs survive as last journaled (reserved ones ready again), counters, pauses
        and drain mode do not. Without it the binlog is emptied first: no job survives
        and ids start again at 1.
        """
        keep = keep_jobs if keep_jobs is not None else self.binlog_dir is not None
        self._shutdown()
        self._close_binlog()
        self._open(keep_jobs=keep)
        self._thread = threading.Thread(target=self._loop, name="fakebeanstalk", daemon=True)
        self._thread.start()

    def __enter__(self) -> FakeBeanstalkServer:
        """Start (if not started) and return the server."""
        if not self._running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def _open(self, *, keep_jobs: bool) -> None:
        if self._running:
            raise ServerStateError("the server is already running")
        storage: Storage = (
            self._memory_binlog if self.binlog_dir is None else DirectoryStorage(self.binlog_dir)
        )
        state = start_state(
            self.clock,
            storage,
            keep_jobs=keep_jobs,
            max_job_size=self.max_job_size,
            binlog_size=self.binlog_size,
            fsync_ms=self.fsync_ms,
            shown=self.binlog_dir is not None,
        )
        try:
            self._listeners, self._port = open_listeners(self._host, self._port, self.unix_path)
        except BaseException:
            state.wal.close()
            raise
        self._state = state
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, _READ, None)
        for listener in self._listeners:
            self._selector.register(listener, _READ, listener)
        self._stopped.clear()
        self._running = True
        if isinstance(self.clock, FakeClock):
            self.clock.subscribe(self)

    def _shutdown(self) -> None:
        if not self._running:
            return
        self._running = False
        self._wake()
        thread = self._thread
        if thread is not None and thread.ident != threading.get_ident():
            thread.join()
        elif thread is None and self._loop_ident != threading.get_ident():
            self._stopped.wait()
        self._thread = None
        if isinstance(self.clock, FakeClock):
            self.clock.unsubscribe(self)

    def _close_all(self) -> None:
        with self._lock:
            for conn in list(self._conns.values()):
                self._close(conn)
            assert self._selector is not None
            self._selector.close()
            for sock in (*self._listeners, self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._listeners = []
            if self.unix_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.unix_path)
            self._run_tasks()

    # -- the loop --------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

    def _loop(self) -> None:
        self._loop_ident = threading.get_ident()
        selector = self._selector
        assert selector is not None
        try:
            while self._running:
                with self._lock:
                    self._run_tasks()
                    self._on_time()
                    timeout = self._select_timeout()
                events = selector.select(timeout)
                with self._lock:
                    for key, mask in events:
                        self._dispatch(key, mask)
                    self._pump()
        finally:
            self._close_all()
            self._loop_ident = None
            self._stopped.set()

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        data = key.data
        if isinstance(data, _Connection):
            if data.sock.fileno() < 0:
                return
            try:
                if mask & _READ:
                    self._read(data)
                if mask & _WRITE and data.sock.fileno() >= 0:
                    self._flush(data)
                    data.session.process()
                    self._flush(data)
            except Exception:  # a bug must cost one connection, never the server
                traceback.print_exc()
                data.session.abort = True
                if data.sock.fileno() >= 0:
                    self._close(data)
        elif isinstance(data, socket.socket):
            self._accept(data)
        else:
            with contextlib.suppress(OSError):
                while self._wake_r is not None and self._wake_r.recv(4096):
                    pass

    def _select_timeout(self) -> float | None:
        nearest = self.next_deadline()
        if nearest is None:
            return None
        if isinstance(self.clock, FakeClock):
            # Fake time only moves through advance(), which wakes the loop; but a timer that
            # is due already (reserve-with-timeout 0 behind another one) fires at once.
            return 0.0 if nearest <= self.clock.now_ns() else None
        return min(3600.0, max(0.0, (nearest - self.clock.now_ns()) / NS_PER_SECOND))

    def _on_time(self) -> None:
        """Fire the timers that are due, end due stalls, and send what they produced."""
        state = self._state
        if state is None:
            return
        state.tick()
        now = self.clock.now_ns()
        for conn in list(self._conns.values()) if self.faults.stalled_once else ():
            until = conn.session.stall_until
            if until is not None and until <= now:
                conn.session.end_stall()
                state.dirty.add(conn.session.client)
        self._pump()

    def _pump(self) -> None:
        """Resume and flush every connection that received output or may continue."""
        state = self._state
        if state is None:
            return
        dirty = state.dirty
        while dirty:
            conn = self._by_client.get(dirty.pop().id)
            if conn is not None:
                conn.session.process()
                self._flush(conn)

    def _accept(self, listener: socket.socket) -> None:
        state = self._state
        assert state is not None and self._selector is not None
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, Session(state, self.faults))
            self._conns[sock.fileno()] = conn
            self._by_client[conn.session.client.id] = conn
            self._update_events(conn)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            conn.session.abort = True
            self._close(conn)
            return
        if data:
            conn.session.feed(data)
        else:
            conn.session.eof = True
        conn.session.process()
        self._flush(conn)

    def _flush(self, conn: _Connection) -> None:
        session = conn.session
        out = session.client.outbox
        while True:
            if out and not session.abort:
                try:
                    sent = conn.sock.send(out)
                    del out[:sent]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    session.abort = session.closing = True
            if session.closing and (session.abort or not out):
                self._close(conn)
                return
            if out or session.abort or not session.eof:
                break
            # After the peer's close the session runs one command per successful write.
            session.process()
            if not out and not session.closing:
                break
        self._update_events(conn)

    def _update_events(self, conn: _Connection) -> None:
        selector = self._selector
        assert selector is not None
        wanted = (_READ if conn.session.wants_input() else 0) | (
            _WRITE if conn.session.client.outbox else 0
        )
        if wanted == conn.events:
            return
        if conn.events == 0:
            selector.register(conn.sock, wanted, conn)
        elif wanted == 0:
            selector.unregister(conn.sock)
        else:
            selector.modify(conn.sock, wanted, conn)
        conn.events = wanted

    def _close(self, conn: _Connection) -> None:
        if conn.events and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        conn.events = 0
        self._conns.pop(conn.sock.fileno(), None)
        self._by_client.pop(conn.session.client.id, None)
        conn.sock.close()
        conn.session.close()

    # -- running code on the loop thread ----------------------------------------------------
    def _run_tasks(self) -> None:
        while self._tasks:
            task, done = self._tasks.popleft()
            try:
                task()
            finally:
                done.set()

    def _call(self, task: Callable[[], None]) -> None:
        """Run ``task`` on the loop thread (under the lock) and wait for it."""
        if not self._running or self._loop_ident in (None, threading.get_ident()):
            with self._lock:
                task()
            return
        done = threading.Event()
        self._tasks.append((task, done))
        self._wake()
        while not done.wait(0.05):
            if not self._running:
                with self._lock:
                    self._run_tasks()

    # -- FakeClock observer -----------------------------------------------------------------
    def next_deadline(self) -> int | None:
        """The earliest timer of the server (jobs, pauses, clients, stalls), or None."""
        with self._lock:
            state = self._state
            nearest = state.next_deadline() if state is not None else None
            for conn in self._conns.values() if self.faults.stalled_once else ():
                until = conn.session.stall_until
                if until is not None and (nearest is None or until < nearest):
                    nearest = until
            return nearest

    def time_changed(self) -> None:
        """The fake clock moved: fire what is due and send the replies, then return."""
        self._call(self._on_time)

    # -- faults -----------------------------------------------------------------------------
    def drain(self) -> None:
        """Enter drain mode (like SIGUSR1): ``put`` answers ``DRAINING`` from now on."""
        with self._lock:
            if self._state is None:
                raise ServerNotRunningError("the server is not running")
            self._state.draining = True

    def drop_connections(self) -> None:
        """Close every client connection now, like a network failure (jobs are kept)."""
        self._call(self._drop_all)

    def _drop_all(self) -> None:
        for conn in list(self._conns.values()):
            conn.session.abort = True
            self._close(conn)
        self._pump()

    def _with_state(self) -> ServerState | None:
        return self._state
