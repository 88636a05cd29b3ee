"""Who may call the API: the token, the Host and Origin checks, and the body size limit.

- Every ``/api/`` call (the event stream included) needs the token when the server has one
  (always off loopback): header ``X-Convbench-Token`` or query ``token`` (an EventSource
  cannot send headers). Without it: 401.
- State-changing calls are POSTs with a JSON body. A foreign web page can send neither a
  JSON content type nor our token without the browser asking first (CORS preflight, which
  this server never grants), and a POST whose ``Origin`` is another site is refused (403):
  no cross-site request forgery.
- On loopback, the ``Host`` header must name this machine, so a DNS-rebinding page cannot
  read the API through a name it controls.
- Bodies larger than ``max_body`` bytes are refused (413) before they are read.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .settings import Settings, is_loopback

TOKEN_HEADER = "X-Convbench-Token"


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _host_of(netloc: str) -> str:
    return urlsplit(f"//{netloc}").hostname or ""


class Guard(BaseHTTPMiddleware):
    """The checks above, in front of every route."""

    def __init__(self, app, settings: Settings):
        super().__init__(app)
        self.settings = settings

    async def dispatch(self, request: Request, call_next):
        s = self.settings
        host = _host_of(request.headers.get("host", ""))
        if is_loopback(s.host) and not is_loopback(host):
            return _refuse(403, f"Host {host!r} is not this machine; open {s.url()}.")
        if request.url.path.startswith("/api/"):
            if s.needs_token:
                given = (request.headers.get(TOKEN_HEADER)
                         or request.query_params.get("token") or "")
                if not hmac.compare_digest(given.encode(), (s.token or "").encode()):
                    return _refuse(401, "Missing or wrong token: open the URL `convbench "
                                        "serve` printed (it carries ?token=…).")
            if request.method not in ("GET", "HEAD"):
                refused = self._check_write(request)
                if refused is not None:
                    return refused
        return await call_next(request)

    def _check_write(self, request: Request) -> Response | None:
        if request.method != "POST":
            return _refuse(405, "Only GET and POST are used by this API.")
        origin = request.headers.get("origin")
        if origin and _host_of(urlsplit(origin).netloc) != _host_of(
                request.headers.get("host", "")):
            return _refuse(403, f"Cross-site request from {origin} refused.")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _refuse(415, "Send the request body as JSON (Content-Type: "
                                "application/json).")
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return _refuse(411, "A POST needs a Content-Length.")
        if int(length) > self.settings.max_body:
            return _refuse(413, f"Request body over {self.settings.max_body} bytes.")
        return None
