"""The web console: the static files of the package's ui/ folder under
/admin/ui/, with headers that keep a page holding a token to itself."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# The console loads only its own files and talks only to this gateway; no
# other site may frame it, and no request it makes names the page it came from.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    # Revalidate (ETag, 304) so an upgraded gateway never serves a stale console.
    "cache-control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """StaticFiles with the console's headers on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def console_routes(prefix: str) -> list[BaseRoute]:
    """`prefix` redirects to `prefix/`, which serves ui/index.html."""

    async def to_index(request: object) -> Response:
        return RedirectResponse(prefix + "/", status_code=308)

    return [
        Route(prefix, to_index, methods=["GET", "HEAD"]),
        Mount(prefix, app=ConsoleFiles(packages=[("runsvc_gateway", "ui")], html=True)),
    ]
