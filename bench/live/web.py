"""``--web PORT``: a page with the run's charts, updating as it goes.

A small HTTP server (``http.server``, a thread of its own; loopback unless
``--web-host`` says otherwise) serves ``/``, one HTML page with inline
JavaScript and SVG (``live.html``: no CDN, nothing to build), and
``/series.json?since=RUN:N``, the current run and its intervals from the
``N``-th on (the page asks every half second for the ones it lacks).  The
charts: p50, p99 and max latency per interval (log scale) and deliveries/s
against what the timetable owed, the warm-up shaded, intervals with faults
marked.  The page follows a sweep from run to run.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.results.schema import IntervalSection, RunDocument
from bench.swarm.series import IntervalView, RunInfo

#: Intervals one ``series.json`` answer carries at most (the page asks again for more).
MAX_PER_ANSWER = 2000


class _State:
    """The current run, shared by the run (writer) and the HTTP threads (readers)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.run: dict[str, Any] | None = None
        self.intervals: list[IntervalSection] = []
        self.done = False

    def answer(self, since: str) -> dict[str, Any]:
        run_text, _, n_text = since.partition(":")
        with self.lock:
            same = self.run is not None and run_text == str(self.run["no"])
            first = int(n_text) if same and n_text.isdigit() else 0
            return {
                "run": self.run,
                "intervals": self.intervals[first : first + MAX_PER_ANSWER],
                "done": self.done,
            }


class WebOutput:
    """Serves the live page (see the module docstring)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.state = _State()
        self.page = resources.files("bench.live").joinpath("live.html").read_bytes()
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.host, self.port = host, int(self.server.server_address[1])
        self._runs = 0
        self._thread = threading.Thread(target=self.server.serve_forever, name="live-web", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        output = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path in ("/", "/index.html"):
                    self._send(output.page, "text/html; charset=utf-8")
                elif url.path == "/series.json":
                    since = parse_qs(url.query).get("since", ["0:0"])[0]
                    self._send(json.dumps(output.state.answer(since)).encode(), "application/json")
                else:
                    self.send_error(HTTPStatus.NOT_FOUND, "the live view has / and /series.json")

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no request log on the run's stderr

        return Handler

    # -- the observer --------------------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        self._runs += 1
        with self.state.lock:
            self.state.run = {
                "no": self._runs,
                "title": run.title,
                "clients": run.clients,
                "interval_s": run.interval_s,
                "warmup_s": round(run.warmup_s, 3),
                "send_end_s": round(run.send_end_s, 3),
            }
            self.state.intervals = []
            self.state.done = False

    def interval(self, view: IntervalView) -> str | None:
        with self.state.lock:
            self.state.intervals.append(view.section)
        return None

    def run_finished(self, doc: RunDocument) -> None:
        with self.state.lock:
            self.state.done = True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
