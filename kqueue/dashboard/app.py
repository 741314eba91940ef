"""The dashboard's web application: Starlette routes over one KQueue, Jinja2 templates.

Pages are GETs that change nothing; every action is a POST to ``/action/NAME`` carrying the
CSRF token, answered with a redirect back to the page it came from (post/redirect/get).
Queue calls run in a worker thread, one at a time (the queue's admin connection is not
shared between threads), so a slow purge never blocks the event loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from kqueue.dashboard import actions
from kqueue.dashboard.rates import Sample, Sampler, take_sample
from kqueue.dashboard.security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    CSRF_FIELD,
    SECURITY_HEADERS,
    csrf_ok,
    is_authorized,
    new_csrf_token,
    session_value,
    token_matches,
)
from kqueue.dashboard.views import dead_letters, find_job, overview, type_row
from kqueue.errors import (
    BrokerError,
    ConfigurationError,
    JobNotFoundError,
    KQueueError,
    StoreError,
    ValidationError,
)
from kqueue.queue import KQueue

__all__ = ["DEAD_LETTERS_PER_PAGE", "Dashboard", "create_app"]

DEAD_LETTERS_PER_PAGE = 50
"""Buried jobs per page of a job type."""

_T = TypeVar("_T")


def link(path: str, **params: Any) -> str:
    """A local URL with its query string (None values left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{path}?{query}" if query else path


def _local(path: str | None) -> str:
    """A redirect target only within this site (no scheme, no other host)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    if any(ord(c) < 33 or ord(c) == 127 for c in path):
        return "/"  # browsers drop tabs and newlines: "/\t/host" would become "//host"
    return path


def _status_of(exc: KQueueError) -> int:
    if isinstance(exc, JobNotFoundError):
        return 404
    if isinstance(exc, ValidationError | ConfigurationError):
        return 400
    if isinstance(exc, BrokerError | StoreError):
        return 503
    return 500


def _int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


class Dashboard:
    """The dashboard of one queue: its pages, its actions and its safety rules."""

    def __init__(
        self,
        queue: KQueue,
        *,
        token: str | None = None,
        refresh: float = 5.0,
        sample_every: float = 10.0,
    ) -> None:
        self.queue = queue
        self.token = token
        self.refresh = refresh
        self.lock = threading.Lock()
        self.sampler = Sampler(self.locked_sample, interval=sample_every)
        env = Environment(loader=PackageLoader("kqueue.dashboard", "templates"), autoescape=True)
        env.globals["link"] = link
        self.templates = Jinja2Templates(env=env)

    async def call(self, func: Callable[..., _T], *args: Any) -> _T:
        """Run a queue call in a worker thread, one at a time."""

        def locked() -> _T:
            with self.lock:
                return func(*args)

        return await run_in_threadpool(locked)

    def locked_sample(self, now: float) -> Sample:
        """A rates sample, taken between requests (the queue's connection is not shared)."""
        with self.lock:
            return take_sample(self.queue, now)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Sample rates while the application runs."""
        self.sampler.start()
        try:
            yield
        finally:
            await run_in_threadpool(self.sampler.stop)

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """A page from its template, with what every page shows."""
        shown = {k: v for k, v in request.query_params.items() if k != "done"}
        context.update(
            csrf=getattr(request.state, "csrf", ""),
            csrf_field=CSRF_FIELD,
            address=self.queue.config.address,
            store=repr(self.queue.store) if self.queue.store is not None else None,
            refresh=self.refresh,
            done=request.query_params.get("done"),
            here=link(request.url.path, **shown),
            token_required=bool(self.token),
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    # -- pages -----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """The overview: counts per job type, servers, store."""
        page = _int(request.query_params.get("page"), 1)
        view = await self.call(overview, self.queue, page)
        return self.render(request, "overview.html", view=view, rates=self.sampler.view())

    async def fragment(self, request: Request) -> Response:
        """The overview's table alone, for the live refresh."""
        page = _int(request.query_params.get("page"), 1)
        view = await self.call(overview, self.queue, page)
        return self.render(request, "_types.html", view=view, rates=self.sampler.view())

    async def job_type(self, request: Request) -> Response:
        """One job type: its counts, actions, and a page of its dead letters."""
        name = request.query_params.get("name", "")
        after = request.query_params.get("after") or None
        row = await self.call(type_row, self.queue, name)
        letters = await self.call(dead_letters, self.queue, name, after, DEAD_LETTERS_PER_PAGE)
        return self.render(request, "type.html", row=row, letters=letters, after=after)

    async def purge_form(self, request: Request) -> Response:
        """The purge confirmation page."""
        row = await self.call(type_row, self.queue, request.query_params.get("name", ""))
        return self.render(request, "purge.html", row=row)

    async def job(self, request: Request) -> Response:
        """A job by record key or beanstalkd id."""
        view = await self.call(find_job, self.queue, request.query_params.get("target", ""))
        return self.render(request, "job.html", job=view)

    async def login_form(self, request: Request) -> Response:
        """The token form (only when a token is required)."""
        return self.render(request, "login.html", logged_out=True)

    async def login(self, request: Request) -> Response:
        """Check the token; on success the browser gets a session cookie."""
        form = await request.form()
        given = str(form.get("token", ""))
        if not self.token or not csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
            return PlainTextResponse("forbidden", status_code=403)
        if not token_matches(given, self.token):
            return self.render(request, "login.html", status=401, failed=True, logged_out=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            AUTH_COOKIE, session_value(self.token), httponly=True, samesite="strict"
        )
        return response

    async def action(self, request: Request) -> Response:
        """Run one action (``/action/NAME``) and redirect back with its outcome."""
        form = await request.form()
        if not csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
            return PlainTextResponse("CSRF token missing or wrong: reload the page", 403)
        fields = {k: str(v) for k, v in form.items() if k != CSRF_FIELD}
        name = request.path_params["name"]
        message = await self.call(actions.run, self.queue, name, fields)
        back = _local(fields.get("back"))
        joiner = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{joiner}{urlencode({'done': message})}", 303)

    # -- safety ----------------------------------------------------------------------------

    async def guard(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Token check, CSRF cookie and security headers around every request."""
        csrf = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        request.state.csrf = csrf
        path = request.url.path
        public = path == "/login" or path.startswith("/static/")
        response: Response
        if public or is_authorized(request, self.token):
            response = await call_next(request)
        elif request.method == "GET":
            response = RedirectResponse("/login", status_code=303)
        else:
            response = PlainTextResponse("log in first", status_code=401)
        if request.cookies.get(CSRF_COOKIE) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        response.headers.update(SECURITY_HEADERS)
        return response

    async def failed(self, request: Request, exc: Exception) -> Response:
        """A kqueue error as a page: 404 not found, 400 bad input, 503 broker or store."""
        assert isinstance(exc, KQueueError)
        status = _status_of(exc)
        return self.render(request, "error.html", status=status, error=str(exc), code=status)

    def routes(self) -> list[Route | Mount]:
        """Every route of the dashboard."""
        pages: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "/": self.home,
            "/fragment/overview": self.fragment,
            "/type": self.job_type,
            "/type/purge": self.purge_form,
            "/job": self.job,
        }
        return [
            *(Route(path, page, methods=["GET"]) for path, page in pages.items()),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/action/{name}", self.action, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("kqueue.dashboard", "static")])),
        ]


def create_app(
    queue: KQueue,
    *,
    token: str | None = None,
    refresh: float = 5.0,
    sample_every: float = 10.0,
) -> Starlette:
    """The dashboard of ``queue`` as an ASGI application.

    ``token``: when given, every page asks for it (see :mod:`kqueue.dashboard.security`).
    ``refresh``: seconds between live refreshes of the overview (0: none). ``sample_every``:
    seconds between samples of the rates chart, taken while the application's lifespan runs
    (0: none). The queue stays the caller's to close.
    """
    dashboard = Dashboard(queue, token=token, refresh=refresh, sample_every=sample_every)
    return Starlette(
        lifespan=dashboard.lifespan,
        routes=dashboard.routes(),
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dashboard.guard)],
        exception_handlers={KQueueError: dashboard.failed},
    )
