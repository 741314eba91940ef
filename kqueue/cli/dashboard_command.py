"""``kqueue dashboard APP``: serve the web dashboard of an application's queue."""

from __future__ import annotations

import argparse

from kqueue.cli.config import Settings, environment
from kqueue.errors import ConfigurationError

__all__ = ["DEFAULT_PORT", "cmd_dashboard"]

DEFAULT_PORT = 8470
"""The dashboard's port when --port is not given."""


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
    queue = settings.open_queue()
    try:
        app = create_app(queue, token=token, refresh=args.refresh)
        host = f"[{args.bind}]" if ":" in args.bind else args.bind
        print(f"kqueue dashboard on http://{host}:{args.port}/ (Ctrl-C stops it)", flush=True)
        uvicorn.run(app, host=args.bind, port=args.port, log_level="warning")
    finally:
        queue.close()
    return 0
