"""`workerfile stats serve`: GET /stats (the figures as JSON) and the dashboard page, from
a statistics store (`sinks.stats`), with the standard library's threading HTTP server.

    GET /                      302 to /dashboard
    GET /stats                 the figures (processors.stats.figures) and their "meta"
    GET /dashboard             the page; its script and style sheet are under /dashboard/
    GET /healthz               200 "ok" while the store answers

The page draws its charts itself as SVG (sinks/dashboard/dashboard.js): nothing is loaded
from anywhere but this server, so it works without internet access; the Content-Security-
Policy header says so to the browser as well. The server binds 127.0.0.1 by default. The
small-cell threshold is the server's setting (`--min-cell`), never a request parameter,
so that no client can lower it.

With `follow=True` the server also runs the stats consumer (`sinks.stats.follow`) in a
background thread, so one command keeps the figures live.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import orjson

from processors import stats as st
from sinks.stats import DEFAULT_GROUP, StatsStore

log = logging.getLogger("workerfile.stats")

STATIC_DIR = Path(__file__).resolve().parent / "dashboard"
STATIC = {  # path -> (file, content type)
    "/dashboard": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class StatsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: StatsStore, *, min_cell: int = st.MIN_CELL,
                 dispatch_cap: float = st.DISPATCH_CAP, group: str = DEFAULT_GROUP):
        self.store = store
        self.store_lock = threading.Lock()  # one connection, used by one request at a time
        self.min_cell = min_cell
        self.dispatch_cap = dispatch_cap
        self.group = group
        super().__init__(address, StatsHandler)

    def stats_json(self) -> dict:
        with self.store_lock:
            return self.store.stats_json(min_cell=self.min_cell, dispatch_cap=self.dispatch_cap, group=self.group)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class StatsHandler(BaseHTTPRequestHandler):
    server: StatsServer
    server_version = "workerfile-stats"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._send(status, orjson.dumps(value), "application/json")

    def do_HEAD(self) -> None:  # noqa: N802 - the base class's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        try:
            if path == "/":
                self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": "/dashboard"})
            elif path == "/stats":
                self._json(HTTPStatus.OK, self.server.stats_json())
            elif path == "/healthz":
                with self.server.store_lock:
                    self.server.store.offsets(self.server.group)
                self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            elif path in STATIC:
                name, content_type = STATIC[path]
                self._send(HTTPStatus.OK, (STATIC_DIR / name).read_bytes(), content_type)
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not_found", "path": path})
        except Exception as err:  # the database gone: answer, do not kill the thread
            log.warning("GET %s failed: %s: %s", path, type(err).__name__, err)
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "unavailable", "message": f"{type(err).__name__}: {err}"})


def make_server(store: StatsStore, host: str = "127.0.0.1", port: int = 8080, **options) -> StatsServer:
    """A server on (host, port) (port 0: a free one; see `.url`), not yet serving."""
    return StatsServer((host, port), store, **options)


def serve_in_thread(server: StatsServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="workerfile-stats-http", daemon=True)
    thread.start()
    return thread


class Follower:
    """The stats consumer in a background thread (for `serve --follow`), with its own
    connection to the store. `stop()` asks it to finish its batch and waits."""

    def __init__(self, open_store: Callable[[], StatsStore], bootstrap: str, group: str = DEFAULT_GROUP,
                 batch_size: int = 500, security=None):
        from sinks.runner import Sink

        self.store = open_store()
        self.sink = Sink(self.store, bootstrap, group=group, batch_size=batch_size, security=security)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="workerfile-stats-follow", daemon=True)

    def _run(self) -> None:
        try:
            self.sink.run(once=False)
        except BaseException as err:  # reported by the server's loop
            self.error = err
            log.error("the stats consumer stopped: %s: %s", type(err).__name__, err)
        finally:
            self.store.close()

    def start(self) -> "Follower":
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.sink.stop()
        self.thread.join(timeout)
