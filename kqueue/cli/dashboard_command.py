"""``kqueue dashboard APP``: serve the web dashboard of an application's queue."""

from __future__ import annotations

import argparse
import signal
import socket
from typing import Any

from kqueue.cli.config import Settings, environment
from kqueue.errors import ConfigurationError

__all__ = ["DEFAULT_PORT", "cmd_dashboard", "listen"]

DEFAULT_PORT = 8470
"""The dashboard's port when --port is not given."""


def listen(address: str, port: int) -> socket.socket:
    """A listening socket on ``address``:``port`` (0: a free port); ConfigurationError with
    the reason when it cannot be had (port taken, address not on this machine)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {address}:{port}: {exc.strerror}") from exc
    return sock


def _serve_until_signal(server: Any, sock: socket.socket, banner: str) -> None:
    """Print the banner and run uvicorn until SIGINT or SIGTERM, then return (exit code 0).

    Our handlers go in before the banner, so a signal sent as soon as it shows (and before
    uvicorn installs its own) still stops the server instead of raising KeyboardInterrupt;
    uvicorn stops gracefully and then raises the signal again, which lands here too."""

    def stop(*_: object) -> None:
        server.should_exit = True

    stopped = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(banner, flush=True)
        server.run(sockets=[sock])
    finally:
        for sig, handler in stopped.items():
            signal.signal(sig, handler)


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the dashboard until Ctrl-C: on 127.0.0.1 unless --bind says otherwise, and then
    only with a token (--token, or KQUEUE_DASHBOARD_TOKEN)."""
    token = args.token or environment().get("KQUEUE_DASHBOARD_TOKEN") or None
    try:
        import uvicorn

        from kqueue.dashboard import create_app
        from kqueue.dashboard.security import check_bind
    except ImportError as exc:
        raise ConfigurationError(
            f"the dashboard needs its extra ({exc.name} is missing): "
            "pip install 'kqueue[dashboard]'"
        ) from exc
    check_bind(args.bind, token)
    sock = listen(args.bind, args.port)
    queue = settings.open_queue()
    try:
        app = create_app(queue, token=token, refresh=args.refresh, sample_every=args.sample)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        banner = f"kqueue dashboard on http://{shown}:{port}/ (Ctrl-C stops it)"
        _serve_until_signal(server, sock, banner)
    finally:
        sock.close()
        queue.close()
    return 0
