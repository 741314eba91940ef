"""kqueue's web dashboard (``pip install 'kqueue[dashboard]'``, ``kqueue dashboard APP``).

An ASGI application (Starlette, Jinja2 templates, a few lines of plain JavaScript for the
live refresh) over the public KQueue / Admin API: the counts of every job type, dead letters
with their payloads, a job by key, and suspend / resume / kick / delete / purge as POSTs with
a CSRF token. See docs/dashboard.md for how to run it and its security model.
"""

from __future__ import annotations

from kqueue.dashboard.app import Dashboard, create_app

__all__ = ["Dashboard", "create_app"]
