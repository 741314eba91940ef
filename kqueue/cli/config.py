"""Command-line settings: flags first, then environment variables, then the application's
own queue (when a command names one), then defaults.

This is the only place kqueue reads environment variables:

- ``KQUEUE_APP``: the application's queue, ``MODULE:ATTRIBUTE`` (as the first argument of a
  command, or ``--app``); every command then runs with its brokers, store, prefixes and codecs;
- ``KQUEUE_BEANSTALKD``: ``host:port`` of beanstalkd (default ``127.0.0.1:11300``), or
  several comma-separated (``h1:11300,h2:11300``): one queue bonded over those servers;
- ``KQUEUE_STORE``: bulk store URL (``redis://...``, ``postgresql+psycopg://...``,
  ``sqlite:///path``); none by default. ``?prefix=`` in it is the store's key prefix;
- ``KQUEUE_STORE_PREFIX``: the same key prefix (Redis keys, SQL table names), when the URL
  has none;
- ``KQUEUE_PREFIX``: tube name prefix (default ``kq-``);
- ``KQUEUE_LANES``: job types share this many tubes (default: the application's, else 0,
  one tube per type; see :mod:`kqueue.lanes`);
- ``KQUEUE_DASHBOARD_TOKEN``: the token ``kqueue dashboard`` asks for (see its --token).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kqueue.aio import AsyncKQueue
from kqueue.config import parse_address, parse_servers
from kqueue.errors import ConfigurationError
from kqueue.job import DEFAULT_TUBE_PREFIX
from kqueue.queue import KQueue
from kqueue.stores.registry import with_prefix

DEFAULT_BEANSTALKD = "127.0.0.1:11300"

APP_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
"""``module.path:attribute``. Job type names and record keys never hold a colon, so a
command's first argument of this shape can only be an application target."""


@dataclass(frozen=True)
class Settings:
    """Where the command line finds the application, beanstalkd and the store.

    ``beanstalkd_given`` and ``prefix_given`` tell a setting chosen on the command line (or in
    the environment) from a default, which must not override an application's own.
    """

    host: str
    port: int
    store_url: str | None
    prefix: str
    beanstalkd_given: bool = False
    app: str | None = None
    prefix_given: bool = False
    servers: tuple[str, ...] = ()
    """Every server when several were given (else empty: ``host:port`` alone)."""
    lanes: int | None = None
    """``--lanes`` / ``KQUEUE_LANES`` (None: not given, the application's own or 0)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
        """Merge flags over environment variables over defaults."""
        flag = getattr(args, "beanstalkd", None)
        address = flag or environ.get("KQUEUE_BEANSTALKD") or DEFAULT_BEANSTALKD
        servers = parse_servers(address)
        if not servers:
            raise ConfigurationError(f"beanstalkd address {address!r} names no server")
        host, port = parse_address(servers[0])
        several = servers if len(servers) > 1 else ()
        store = getattr(args, "store", None) or environ.get("KQUEUE_STORE") or None
        store_prefix = getattr(args, "store_prefix", None) or environ.get("KQUEUE_STORE_PREFIX")
        if store_prefix:
            if store is None:
                raise ConfigurationError(
                    "a store key prefix (--store-prefix, KQUEUE_STORE_PREFIX) needs a store "
                    "URL: --store or KQUEUE_STORE"
                )
            store = with_prefix(store, store_prefix)
        prefix = getattr(args, "prefix", None) or environ.get("KQUEUE_PREFIX")
        given = bool(flag or environ.get("KQUEUE_BEANSTALKD"))
        app = getattr(args, "app", None) or environ.get("KQUEUE_APP") or None
        return cls(
            host, port, store, prefix or DEFAULT_TUBE_PREFIX, given, app, prefix is not None,
            several, _lanes(getattr(args, "lanes", None) or environ.get("KQUEUE_LANES")),
        )  # fmt: skip

    def open_queue(self, **kwargs: Any) -> KQueue:
        """The application's queue (rebound to the settings given here), or a plain KQueue
        on these settings when no application is named."""
        if self.app is not None:
            return rebind(load_queue(self.app), self)
        return KQueue(
            host=self.host,
            port=self.port,
            servers=self.servers,
            bulk_store=self.store_url,
            tube_prefix=self.prefix,
            lanes=self.lanes or 0,
            **kwargs,
        )


def _lanes(text: str | None) -> int | None:
    """The number of lanes given on the command line or in the environment (None: not)."""
    if text is None or text == "":
        return None
    if not str(text).strip().isdigit():
        raise ConfigurationError(f"lanes (--lanes, KQUEUE_LANES) must be a whole number: {text!r}")
    return int(text)


def load_queue(path: str) -> KQueue:
    """The KQueue at ``module:attribute`` (or a zero-argument callable returning one); of an
    AsyncKQueue, the KQueue it wraps."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"{path!r} is not MODULE:ATTRIBUTE (e.g. myapp.jobs:queue)")
    if "" not in sys.path:
        sys.path.insert(0, "")  # like python -m: the current directory is importable
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        found: Any = getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"module {module_name!r} has no {attribute!r}") from None
    if callable(found) and not isinstance(found, KQueue):
        found = found()
    if isinstance(found, AsyncKQueue):
        found = found.queue  # the same application: its handlers may be async def
    if not isinstance(found, KQueue):
        raise ConfigurationError(f"{path} is a {type(found).__name__}, not a kqueue.KQueue")
    return found


def rebind(queue: KQueue, settings: Settings) -> KQueue:
    """The same queue (handlers, codecs, retries, middleware) on the command line's
    broker, store and tube prefix where they were given: ``dataclasses.replace`` on its
    config, so no other setting is dropped."""
    given = settings.beanstalkd_given or settings.prefix_given or settings.lanes is not None
    if not (given or settings.store_url):
        return queue
    config = queue.config
    if settings.beanstalkd_given:
        config = dataclasses.replace(
            config, host=settings.host, port=settings.port, servers=settings.servers
        )
    if settings.prefix_given:
        config = dataclasses.replace(config, tube_prefix=settings.prefix)
    if settings.lanes is not None:
        config = dataclasses.replace(config, lanes=settings.lanes)
    return queue.with_config(config, bulk_store=settings.store_url)


def environment() -> Mapping[str, str]:
    """The process environment (read here, and only here)."""
    return os.environ
