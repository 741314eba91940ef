"""Running jobs: the handler registry and the worker's loop on a connection of its own.

The loop reserves a window of jobs (:mod:`kqueue.window`), runs it (:mod:`kqueue.runner`),
and lets the ack flusher (:mod:`kqueue.acks`) delete finished jobs while the next window is
reserved. Waiting blocks in beanstalkd's reserve, never polls; :meth:`Consumer.stop` and
:meth:`Consumer.add_handler` wake it through a pipe. A lost connection or a failing store
hands the window back and is retried with backoff: the loop never dies of them.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import cast

from kqueue.beanstalk.commands import DeadlineSoon
from kqueue.beanstalk.connection import BeanstalkConnection, Wakeup
from kqueue.beanstalk.pipeline import watch_exactly
from kqueue.beanstalk.wire import ReservedJob
from kqueue.bonded import BondedReserver, Part
from kqueue.config import QueueConfig
from kqueue.errors import BrokerError, ConfigurationError, StoreError, ValidationError
from kqueue.lane_gate import lane_gate
from kqueue.middleware.base import Middleware
from kqueue.middleware.touch import AutoTouch
from kqueue.retry import RetryPolicy
from kqueue.runner import Handler, HandlerSpec, JobRunner
from kqueue.serialization import CodecRegistry
from kqueue.stores.base import Store
from kqueue.window import ReserveWindow

logger = logging.getLogger("kqueue")


class Consumer:
    """The handlers of a queue, and :meth:`run_jobs` that runs them."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        store: Store | None,
        codecs: CodecRegistry,
        events: Middleware,
        touch: AutoTouch,
    ) -> None:
        self.config = config
        self._handlers: dict[str, HandlerSpec] = {}
        self._touch = touch
        self._conn = config.new_connection()
        self._wakeup = Wakeup()
        self._window = ReserveWindow(config.window, target_seconds=config.window_target)
        self._bonded = BondedReserver(config, self._window) if config.bonded else None
        self._stop_requested = False
        self._stop_event: threading.Event | None = None
        self._only: frozenset[str] | None = None
        # The tubes to watch, worked out again only when the handlers or job_types change
        # (a version bumped by add/remove_handler, from any thread), not once per window.
        self._handlers_version = 0
        self._wanted: tuple[object, list[str]] = ((None, None), [])
        # The list last watched on each connection (the worker's, or each server's).
        self._synced: dict[BeanstalkConnection, list[str]] = {}
        self.runner = JobRunner(
            store=store,
            codecs=codecs,
            handlers=self._handlers,
            tube_prefix=config.tube_prefix,
            lanes=lane_gate(config, store),
            retry=config.retry,
            events=events,
            inspector=config.new_connection() if config.count_lost_attempts else None,
        )

    @property
    def handlers(self) -> Mapping[str, HandlerSpec]:
        """The registered handlers by job type (read-only)."""
        return MappingProxyType(self._handlers)

    def close(self) -> None:
        """Send the deletes of finished jobs, then close the connection."""
        self.runner.close()  # the deletes go out before their connection closes
        self._conn.close()
        if self._bonded is not None:
            self._bonded.close()
        self._wakeup.close()

    # -- the registry ----------------------------------------------------------------------

    def add_handler(
        self,
        job_type: str,
        handler: Handler,
        *,
        retry: RetryPolicy | None,
        auto_touch: bool,
        keep_result: float | None = None,
    ) -> None:
        """Register the one handler of a job type (see KQueue.add_handler)."""
        self.config.tube_of(job_type)
        if not callable(handler):
            raise ValidationError(f"handler for {job_type!r} must be callable")
        if job_type in self._handlers:
            raise ValidationError(f"job type {job_type!r} already has a handler")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValidationError("retry must be a RetryPolicy")
        if keep_result is not None and (
            isinstance(keep_result, bool)
            or not isinstance(keep_result, int | float)
            or not 0 < keep_result < float("inf")
        ):
            raise ValidationError(
                f"keep_result must be a positive number of seconds, not {keep_result!r}"
            )
        self._handlers[job_type] = HandlerSpec(handler, retry, auto_touch, keep_result)
        self._handlers_version += 1
        if auto_touch and self._touch.job_types is not None:
            self._touch.job_types.add(job_type)
        self._wakeup.set()  # a waiting run_jobs picks up the new tube

    def remove_handler(self, job_type: str) -> None:
        """Stop running jobs of this type here; its jobs stay queued."""
        if self._handlers.pop(job_type, None) is None:
            raise ValidationError(f"job type {job_type!r} has no handler")
        self._handlers_version += 1
        if self._touch.job_types is not None:
            self._touch.job_types.discard(job_type)
        self._wakeup.set()

    def _wanted_tubes(self) -> list[str]:
        """The tubes of the job types this run handles (kept until the handlers change)."""
        key = (self._handlers_version, self._only)
        cached_key, tubes = self._wanted
        if cached_key != key:
            only, tube_of = self._only, self.config.tube_of
            types = [t for t in list(self._handlers) if only is None or t in only]
            tubes = list(dict.fromkeys(tube_of(t) for t in types))  # lanes: one per lane
            self._wanted = (key, tubes)
            self.runner.only = only
        return tubes

    def check_job_types(self, job_types: Collection[str]) -> frozenset[str]:
        """``job_types`` as a set, after checking each has a handler (ConfigurationError)."""
        unknown = sorted(set(job_types) - set(self._handlers))
        if unknown:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise ConfigurationError(f"no handler for job type(s) {unknown}; handlers: {known}")
        return frozenset(job_types)

    def check_worker(
        self, job_types: Collection[str] | None, *, sweep_interval: float | None
    ) -> frozenset[str] | None:
        """The job types a worker over this consumer runs (None: every handler's), after
        checking it has a handler to run, each type named has one, and a sweeper has a
        store (ConfigurationError); shared by the sync and the asyncio worker."""
        if not self._handlers:
            raise ConfigurationError("the queue has no handlers: nothing for a worker to run")
        checked = None if job_types is None else self.check_job_types(job_types)
        if sweep_interval is not None and self.runner.store is None:
            raise ConfigurationError("--sweep-interval needs a bulk store (KQUEUE_STORE)")
        return checked

    # -- the loop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Make a running run_jobs return after the current job (from any thread)."""
        self._stop_requested = True
        self._wakeup.set()

    def _stopping(self) -> bool:
        event = self._stop_event
        return self._stop_requested or (event is not None and event.is_set())

    def run_jobs(
        self,
        count_limit: int = -1,
        time_limit_ms: int = -1,
        *,
        job_types: Collection[str] | None = None,
        stop_event: threading.Event | None = None,
    ) -> int:
        """Run jobs; how many handlers ran (see KQueue.run_jobs)."""
        for name, value in (("count_limit", count_limit), ("time_limit_ms", time_limit_ms)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name} must be an int")
        self._only = None if job_types is None else self.check_job_types(job_types)
        if count_limit == 0:
            return 0
        self._stop_requested = False
        self._stop_event = stop_event
        self._wakeup.open()  # before a stop() from another thread may need it
        self._wakeup.clear()
        deadline = None if time_limit_ms < 0 else time.monotonic() + time_limit_ms / 1000
        try:
            return self._loop(count_limit, deadline, drain=time_limit_ms == 0)
        finally:
            self.runner.drain()  # every finished job deleted when run_jobs returns
            if self._bonded is not None:
                self._bonded.abandon_waits()  # no job held for a worker no longer waiting

    def _loop(self, count_limit: int, deadline: float | None, *, drain: bool) -> int:
        ran = 0
        backoff = self.config.reconnect_delay[0]
        while (count_limit < 0 or ran < count_limit) and not self._stopping():
            wait = _remaining(deadline, drain=drain)
            if wait is not None and wait < 0:
                break
            if self.runner.acks.store_failures:
                # Finished jobs cannot be settled (the store refuses deletes): take new ones
                # slowly, so that a read-only store costs pauses, not a storm of re-runs.
                self._pause(backoff, deadline)
                backoff = min(backoff * 2, self.config.reconnect_delay[1])
            try:
                reserved = self._reserve(wait, None if count_limit < 0 else count_limit - ran)
                if reserved:
                    ran += self._run_window(reserved)
            except DeadlineSoon:
                self._pause(0.25, deadline)
                continue
            except (BrokerError, StoreError) as exc:
                self._recover(exc, backoff, deadline)
                backoff = min(backoff * 2, self.config.reconnect_delay[1])
                continue
            if not self.runner.acks.store_failures:
                backoff = self.config.reconnect_delay[0]
            if not reserved and drain:
                break
        return ran

    def _recover(self, exc: Exception, backoff: float, deadline: float | None) -> None:
        """Hand the window back (closing the connection releases it), then pause."""
        self.runner.drain()
        self._conn.close()
        if self._bonded is not None:
            self._bonded.close()  # which server failed mid-window is unknown: all go back
        if isinstance(exc, BrokerError):
            # Lost, timed out, or an answer that makes no sense: start again on a fresh one.
            logger.warning("worker: beanstalkd failed: %s; retrying in %.2f s", exc, backoff)
        else:
            logger.error("store failed while running a job: %s", exc)
        self._pause(backoff, deadline)

    def _reserve(self, wait: float | None, room: int | None) -> list[ReservedJob] | list[Part]:
        # Clear wake-ups before looking at the flags they announce, so none is lost.
        self._wakeup.clear()
        if self._stopping():
            return []
        wanted = self._wanted_tubes()
        if not wanted:
            self._pause(wait, None)
            return []
        if wait is None:  # wait forever, but hear from the server every heartbeat
            wait = self.config.heartbeat
        if self._bonded is not None:
            return self._bonded.reserve(
                wanted,
                self._sync_watches,
                wait,
                wakeup=self._wakeup.fd,
                room=room,
                before_wait=self.runner.drain,
            )
        self._sync_watches(self._conn, wanted)
        if self.runner.lanes is not None:
            self.runner.lanes.look_for_strays(self._conn, list(self._handlers))
        return self._window.reserve(
            self._conn, wait, wakeup=self._wakeup.fd, room=room, before_wait=self.runner.drain
        )

    def _run_window(self, reserved: list[ReservedJob] | list[Part]) -> int:
        started = time.monotonic()
        if self._bonded is None:
            window = cast(list[ReservedJob], reserved)
            ran = self.runner.run_window(
                self._conn, window, reserved_at=started, should_stop=self._stopping
            )
        else:
            parts = cast(list[Part], reserved)
            ran = self.runner.run_parts(
                parts,
                reserved_at=started,
                should_stop=self._stopping,
                bond=self._bonded.live_ids(),
            )
        jobs = len(reserved) if self._bonded is None else sum(len(p[1]) for p in reserved)
        self._window.observe(jobs, time.monotonic() - started)
        return ran

    def _pause(self, seconds: float | None, deadline: float | None) -> None:
        """Sleep, but wake for stop() or add_handler(), and never past the deadline."""
        if deadline is not None:
            seconds = min(seconds or 0, max(0.0, deadline - time.monotonic()))
        if seconds is None or seconds > 0:
            select.select([self._wakeup.fd], [], [], seconds)

    def _sync_watches(self, conn: BeanstalkConnection, wanted: list[str]) -> None:
        """Make ``conn`` watch ``wanted`` and nothing else: one pipelined burst, however many
        job types (watches first: beanstalkd never lets a connection ignore its last tube)."""
        if conn.connected and self._synced.get(conn) is wanted and conn.watch_count == len(wanted):
            return  # only this loop changes the watches of its connections
        watched = conn.watched
        if conn.connected and watched == wanted:
            self._synced[conn] = wanted
            return
        self._synced.pop(conn, None)
        watch_exactly(conn, wanted)
        self._synced[conn] = wanted


def _remaining(deadline: float | None, *, drain: bool) -> float | None:
    """Seconds left to wait: None forever, 0 for run-what-is-ready, < 0 when time is up."""
    if drain:
        return 0
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    return left if left > 0 else -1.0
