"""Who may see the dashboard: a viewer's bearer token (or better), as an ``Authorization:
Bearer`` header (scripts) or a cookie set by opening ``/?token=...`` once (a browser; the
URL ``ringrift up`` prints), and only under a Host name the settings allow, so a page on
another site cannot reach it through DNS rebinding. /metrics and /healthz are not behind
it (Prometheus and load balancers scrape them). On an insecure cluster the dashboard is
open, as everything else is."""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from ringrift_runtime.security.identity import Identity, Kind, Role
from ringrift_runtime.security.tokens import TokenStore

COOKIE = "ringrift_dashboard"
# (status, content type, body) and, for a redirect, more headers.
Response = tuple[str, str, bytes] | tuple[str, str, bytes, list[tuple[str, str]]]
Route = Callable[[dict[str, Any]], Response]

UNAUTHORIZED = """<!doctype html><meta charset="utf-8"><title>RingRift: sign in</title>
<p>The dashboard needs a viewer token. Open the address <code>ringrift up</code> printed, or
make a token with <code>ringrift certs token &lt;name&gt; --role viewer --cluster &lt;cluster&gt;</code>
and open <code>/?token=&lt;token&gt;</code> once.</p>"""


def host_name(header: str) -> str:
    """The name of a Host header, without its port ("[::1]:8080" -> "[::1]")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class DashboardAccess:
    def __init__(self, cluster: str, tokens: TokenStore | None, hosts: list[str], insecure: bool) -> None:
        self._cluster = cluster
        self._tokens = tokens
        self._hosts = {h.lower() for h in hosts}
        self._insecure = insecure

    def viewer(self, token: str) -> Identity | None:
        """The user a token stands for, when it may view (viewer, operator or admin)."""
        if self._tokens is None or not token:
            return None
        identity = self._tokens.verify(token)
        if identity is None or identity.kind is not Kind.USER or identity.cluster != self._cluster:
            return None
        return identity if identity.role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN) else None

    @staticmethod
    def _presented(environ: dict[str, Any]) -> str:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        try:
            cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        except CookieError:
            return ""
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None else ""

    def guard(self, route: Route, page: bool) -> Route:
        """``route`` behind the Host check and the credential check."""

        def guarded(environ: dict[str, Any]) -> Response:
            if host_name(environ.get("HTTP_HOST", "")) not in self._hosts:
                names = ", ".join(sorted(self._hosts))
                return "421 Misdirected Request", "text/plain", f"this host name is not served (use {names})\n".encode()
            if self._insecure:
                return route(environ)
            offered = parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0] if page else ""
            if offered:
                if self.viewer(offered) is None:
                    return "401 Unauthorized", "text/html; charset=utf-8", UNAUTHORIZED.encode()
                # Keep the token in an HttpOnly cookie and drop it from the address bar.
                cookie = f"{COOKIE}={offered}; HttpOnly; SameSite=Strict; Path=/"
                return "303 See Other", "text/plain", b"", [("Location", "/"), ("Set-Cookie", cookie)]
            if self.viewer(self._presented(environ)) is None:
                if page:
                    return "401 Unauthorized", "text/html; charset=utf-8", UNAUTHORIZED.encode()
                return "401 Unauthorized", "application/json", b'{"error": "a viewer token is needed"}'
            return route(environ)

        return guarded

    def routes(self, routes: dict[str, Route]) -> dict[str, Route]:
        return {path: self.guard(route, page=not path.startswith("/api/")) for path, route in routes.items()}
