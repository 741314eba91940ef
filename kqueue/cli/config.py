"""Command-line settings: flags first, then environment variables, then defaults.

This is the only place kqueue reads environment variables:

- ``KQUEUE_BEANSTALKD``: ``host:port`` of beanstalkd (default ``127.0.0.1:11300``);
- ``KQUEUE_STORE``: bulk store URL (``redis://...``, ``postgresql+psycopg://...``,
  ``sqlite:///path``); none by default;
- ``KQUEUE_PREFIX``: tube name prefix (default ``kq-``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

from kqueue.errors import ConfigurationError
from kqueue.job import DEFAULT_TUBE_PREFIX
from kqueue.queue import KQueue
from kqueue.stores.url import redact_url

DEFAULT_BEANSTALKD = "127.0.0.1:11300"


def parse_address(text: str) -> tuple[str, int]:
    """``host:port``, ``host`` or ``[v6]:port`` into a pair; ConfigurationError if bad."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "11300"
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif ":" not in text:
        host, port = text, "11300"
    else:
        host, port = "", ""
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"beanstalkd address {text!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class Settings:
    """Where the command line finds beanstalkd and the store."""

    host: str
    port: int
    store_url: str | None
    prefix: str
    beanstalkd_given: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
        """Merge flags over environment variables over defaults."""
        flag = getattr(args, "beanstalkd", None)
        address = flag or environ.get("KQUEUE_BEANSTALKD") or DEFAULT_BEANSTALKD
        host, port = parse_address(address)
        store = getattr(args, "store", None) or environ.get("KQUEUE_STORE") or None
        prefix = getattr(args, "prefix", None) or environ.get("KQUEUE_PREFIX", DEFAULT_TUBE_PREFIX)
        given = bool(flag or environ.get("KQUEUE_BEANSTALKD"))
        return cls(host, port, store, prefix, given)

    def open_queue(self, **kwargs: object) -> KQueue:
        """A KQueue on these settings."""
        return KQueue(
            host=self.host,
            port=self.port,
            bulk_store=self.store_url,
            tube_prefix=self.prefix,
            **kwargs,  # type: ignore[arg-type]
        )

    def describe(self) -> str:
        """One line for logs, with credentials redacted."""
        store = redact_url(self.store_url) if self.store_url else "none (inline)"
        return f"beanstalkd {self.host}:{self.port}, store {store}, prefix {self.prefix!r}"


def environment() -> Mapping[str, str]:
    """The process environment (read here, and only here)."""
    return os.environ
