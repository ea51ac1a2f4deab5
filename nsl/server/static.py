"""The web interface: static HTML, CSS and JS shipped in `nsl/server/web/`, served at `/` and
`/static/{file}`.

The page is public (it holds no data; everything it shows comes from the API, with the user's token).
Only the files shipped in that folder are served, looked up by exact name in a table made once: a name
from a URL never reaches the file system, so no path can lead outside it.

Caching: every file has a strong ETag (from its SHA-256) and a conditional GET gets 304. The page is
`Cache-Control: no-cache` (always revalidated), and it names its CSS, JS and icon with `?v=VERSION`
(the file's hash); fetched with the current version, those are cached for a year (`immutable`), so a
new nsl's page never runs an old script.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

from ..errors import NotFound
from .app import Request, Response

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The page talks to its own origin only; nothing else may load or run.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class UnknownFile(NotFound):
    code = "unknown_file"


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    version: str  # the start of the body's SHA-256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _asset(name: str, body: bytes, content_type: str) -> Asset:
    return Asset(name, body, content_type, hashlib.sha256(body).hexdigest()[:20])


@functools.cache
def assets() -> dict[str, Asset]:
    """name -> Asset for every file of a known type in nsl/server/web (read once)."""
    out = {}
    for entry in (resources.files(__package__) / "web").iterdir():
        name = entry.name
        ext = name[name.rfind("."):] if "." in name else ""
        if entry.is_file() and ext in TYPES and not name.startswith("."):
            out[name] = _asset(name, entry.read_bytes(), TYPES[ext])
    page = out.get("index.html")
    if page is not None:  # the page names each file with its version
        body = page.body
        for a in out.values():
            body = body.replace(f'"/static/{a.name}"'.encode(), f'"/static/{a.name}?v={a.version}"'.encode())
        out["index.html"] = _asset(page.name, body, page.content_type)
    return out


def _serve(req: Request, name: str) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise UnknownFile(f"no such file: {name[:100]!r}", hint="the web interface is at /")
    # Fetched by its current version (as the page names it), a file never changes; else revalidate.
    cache = "public, max-age=31536000, immutable" if req.query.get("v") == asset.version else "no-cache"
    headers = [("Content-Type", asset.content_type), ("Cache-Control", cache), ("ETag", asset.etag),
               ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
    if asset.content_type.startswith("text/html"):
        headers += [("Content-Security-Policy", CSP), ("X-Frame-Options", "DENY")]
    match = req.environ.get("HTTP_IF_NONE_MATCH", "")
    if match and (match.strip() == "*" or asset.etag in [m.strip().removeprefix("W/") for m in match.split(",")]):
        return Response(304, headers=[h for h in headers if h[0] != "Content-Type"], body=b"")
    return Response(200, headers=headers, body=asset.body)


def index(req: Request) -> Response:
    return _serve(req, "index.html")


def static_file(req: Request) -> Response:
    return _serve(req, req.params["file"])
