"""The dashboard's safety rules: who may see it (a token), which POSTs count (CSRF), which
addresses it may listen on without a token, and the headers every response carries.

- Loopback only by default: on any other address :func:`check_bind` refuses to start without
  a token.
- The token is given once, on /login (or as ``Authorization: Bearer TOKEN`` by scripts); the
  browser then holds a cookie derived from it (HttpOnly, SameSite=Strict), never the token.
- Every action is a POST whose form carries the CSRF token of the browser's cookie (the
  double-submit pattern); a POST from another origin is refused on its Origin header too.
- Every page forbids inline script and any script not served by the dashboard itself
  (Content-Security-Policy): even markup that escaped the templates' escaping could not run.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

from kqueue.errors import ConfigurationError

__all__ = [
    "AUTH_COOKIE",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SECURITY_HEADERS",
    "check_bind",
    "csrf_ok",
    "is_authorized",
    "new_csrf_token",
    "session_value",
    "token_matches",
]

AUTH_COOKIE = "kqueue_dashboard_session"
CSRF_COOKIE = "kqueue_dashboard_csrf"
CSRF_FIELD = "csrf"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Headers of every response."""


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP or ``localhost``) reaches this machine only."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(address: str, token: str | None) -> None:
    """ConfigurationError when the dashboard would listen beyond loopback without a token."""
    if not is_loopback(address) and not token:
        raise ConfigurationError(
            f"refusing to serve the dashboard on {address} without a token: anyone who "
            "reaches it could kick, delete and purge jobs. Give --token (or "
            "KQUEUE_DASHBOARD_TOKEN), or bind to 127.0.0.1"
        )


def session_value(token: str) -> str:
    """The cookie a browser holds once logged in: derived from the token, not the token."""
    return hmac.new(token.encode(), b"kqueue-dashboard-session", hashlib.sha256).hexdigest()


def is_authorized(request: Request, token: str | None) -> bool:
    """Whether a request may see the dashboard: always without a token; else with the
    session cookie or an ``Authorization: Bearer`` header."""
    if not token:
        return True
    cookie = request.cookies.get(AUTH_COOKIE, "")
    if cookie and hmac.compare_digest(cookie, session_value(token)):
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and token_matches(given.strip(), token)


def token_matches(given: str, token: str) -> bool:
    """Whether a token typed on the login page is the dashboard's (in constant time)."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def new_csrf_token() -> str:
    """A fresh random CSRF token for a browser's cookie."""
    return secrets.token_urlsafe(32)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """Whether a POST carries its browser's CSRF token and comes from this origin."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        return False
    expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected and submitted) and hmac.compare_digest(expected, submitted or "")
