"""BrokerHealth: a broker that timed out or refused a connection is marked down and probed in
the background, so that producers spend at most one timeout per outage instead of one per
add (a black-holed server answers nothing and closes nothing: every command would wait its
whole timeout)."""

from __future__ import annotations

import logging
import threading
import time

from kqueue.config import QueueConfig, format_address
from kqueue.errors import BrokerConnectionError, BrokerError, BrokerTimeoutError

logger = logging.getLogger("kqueue")

PROBE_INTERVAL = 1.0
"""Seconds between two probes of a broker marked down."""


class BrokerHealth:
    """Whether a broker of ``config`` (the one at ``address``; None: the first) is believed
    up; thread-safe."""

    def __init__(
        self,
        config: QueueConfig,
        *,
        probe_interval: float = PROBE_INTERVAL,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.config = config
        self.probe_interval = probe_interval
        self._address = config.addresses[0] if address is None else address
        self.address = format_address(*self._address)
        """``host:port`` of the broker watched, for messages."""
        self._down: BrokerError | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._prober: threading.Thread | None = None

    @property
    def down(self) -> BrokerError | None:
        """The error that marked the broker down, or None while it is believed up."""
        return self._down

    def failed(self, error: BrokerError) -> None:
        """Note a failed exchange: a timeout or a lost connection marks the broker down."""
        if not isinstance(error, BrokerConnectionError | BrokerTimeoutError):
            return  # it answered (DRAINING, a protocol error): it is up
        with self._lock:
            if self._down is not None:
                return
            self._down = BrokerConnectionError(
                f"beanstalkd at {self.address} marked down ({error}); probing it every "
                f"{self.probe_interval:g} s"
            )
            self._closed.clear()
            self._prober = threading.Thread(target=self._probe, name="kqueue-probe", daemon=True)
            self._prober.start()
        logger.warning("%s", self._down)

    def close(self) -> None:
        """Stop probing."""
        self._closed.set()
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.join()

    def _probe(self) -> None:
        while not self._closed.wait(self.probe_interval):
            conn = self.config.new_connection(self._address)
            try:
                conn.stats()
            except BrokerError:
                continue
            finally:
                conn.close()
            self._down = None
            logger.warning("beanstalkd at %s answers again", self.address)
            return

    def wait_until_up(self, timeout: float) -> bool:
        """True once the broker is believed up (at most ``timeout`` seconds; for tests and
        tools that must not go on before it is)."""
        deadline = time.monotonic() + timeout
        while self._down is not None and time.monotonic() < deadline:
            self._closed.wait(0.05)
        return self._down is None
