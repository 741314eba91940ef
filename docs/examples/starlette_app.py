"""A Starlette app that enqueues a job from its request handler (see docs/asyncio.md).

Serve it with any ASGI server (``uvicorn docs.examples.starlette_app:app``) and run its
handlers with ``kqueue worker docs.examples.starlette_app:queue --concurrency 100``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kqueue import Job
from kqueue.aio import AsyncKQueue

__all__ = ["SENT", "app", "create_app", "make_queue", "queue", "send_welcome"]

SENT: list[str] = []
"""Where this example's "emails" go (a real app would call its mail service)."""


async def send_welcome(job: Job) -> None:
    """The handler of ``welcome-email`` jobs: awaits the network, holds no process."""
    await asyncio.sleep(0.01)  # the mail service's round trip
    SENT.append(job.data["to"])


def make_queue(**settings: Any) -> AsyncKQueue:
    """The application's queue (``settings``: KQueue's arguments) with its handlers."""
    made = AsyncKQueue(**settings)  # KQueue's arguments: host, port, bulk_store ...
    made.add_handler("welcome-email", send_welcome)
    return made


def create_app(jobs: AsyncKQueue) -> Starlette:
    """The web app, enqueueing on ``jobs``."""

    async def signup(request: Request) -> JSONResponse:
        form = await request.json()
        job_id = await jobs.add_job("welcome-email", {"to": form["email"]})
        return JSONResponse({"queued": job_id}, status_code=202)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await jobs.open()  # an unreachable beanstalkd fails the start, with its address
        yield
        await jobs.close()

    return Starlette(routes=[Route("/signup", signup, methods=["POST"])], lifespan=lifespan)


queue = make_queue(bulk_store="sqlite:///welcome-jobs.sqlite3")
app = create_app(queue)
