"""`nsl serve`: the WSGI application that makes a nsl database reachable over HTTP.

`app.App` is built from the one route table in `api.ROUTES`; `run.serve` runs it under waitress and
stops it cleanly; `static` serves the web interface (`web/`: HTML, CSS, JS) at `/`. The core never
imports this package.
"""
from .app import App

__all__ = ["App"]
