"""The dashboard's guard: Host names it serves, a viewer token by header or cookie, a
sign-in link that sets the cookie and leaves the address bar clean."""

from __future__ import annotations

from pathlib import Path

from ringrift_gateway.api.dashboard_access import COOKIE, DashboardAccess, host_name
from ringrift_runtime.security.identity import Role, user
from ringrift_runtime.security.tokens import TokenStore


def page(environ):
    return "200 OK", "text/plain", b"secret page"


def test_host_names_lose_their_port() -> None:
    assert host_name("localhost:51050") == "localhost"
    assert host_name("[::1]:8080") == "[::1]"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("Evil.Example:80") == "evil.example"


def test_the_guard_wants_a_known_host_and_a_viewer_token(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    viewer = store.add(user("v", Role.VIEWER, "demo"), 60)
    admin = store.add(user("a", Role.ADMIN, "demo"), 60)
    elsewhere = store.add(user("v", Role.VIEWER, "other"), 60)
    access = DashboardAccess("demo", store, ["localhost"], insecure=False)
    routes = access.routes({"/": page, "/api/status": page})

    def call(path: str, host: str = "localhost:1", **headers: str):
        query = path.partition("?")[2]
        environ = {"HTTP_HOST": host, "QUERY_STRING": query, **headers}
        return routes[path.partition("?")[0]](environ)

    assert call("/api/status")[0].startswith("401")
    assert call("/api/status", HTTP_AUTHORIZATION=f"Bearer {viewer}")[2] == b"secret page"
    assert call("/api/status", HTTP_AUTHORIZATION=f"Bearer {admin}")[0] == "200 OK"  # roles include weaker ones
    assert call("/api/status", HTTP_AUTHORIZATION=f"Bearer {elsewhere}")[0].startswith("401")
    assert call("/api/status", HTTP_COOKIE=f"{COOKIE}={viewer}")[0] == "200 OK"
    assert call("/api/status", host="evil.example", HTTP_AUTHORIZATION=f"Bearer {viewer}")[0].startswith("421")
    signed_in = call(f"/?token={viewer}")
    assert signed_in[0].startswith("303") and ("Location", "/") in signed_in[3]
    cookie = dict(signed_in[3])["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={viewer}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert call("/?token=rrt.nope.nope")[0].startswith("401")
    assert call(f"/api/status?token={viewer}")[0].startswith("401")  # the link signs in pages, not the API


def test_an_insecure_cluster_still_checks_the_host(tmp_path: Path) -> None:
    access = DashboardAccess("demo", None, ["localhost"], insecure=True)
    route = access.routes({"/": page})["/"]
    assert route({"HTTP_HOST": "localhost"})[0] == "200 OK"
    assert route({"HTTP_HOST": "rebind.example"})[0].startswith("421")
