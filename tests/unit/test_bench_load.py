"""bench.load: the lean load generator counts what a real keep-alive server answered."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import post_in_loop


class Answers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    status = 202
    body = b'{"events":[{"uuid":"a"},{"uuid":"b"}]}'
    chunked = False
    seen: list[tuple[str, str | None, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        self.seen.append((self.path, self.headers["Authorization"], self.rfile.read(length)))
        self.send_response(self.status)
        if self.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/oms/events/"
    finally:
        server.shutdown()
        server.server_close()


def test_counts_accepted_requests_and_their_events() -> None:
    class Accepting(Answers):
        seen: list = []

    with serve(Accepting) as url:
        result = post_in_loop(
            url, {"Authorization": "Token t"}, b'{"x":1}', clients=3, warm_up=0.1, duration=0.4
        )
    assert result["requests"] > 0 and result["failed"] == 0
    assert result["events_per_second"] == pytest.approx(2 * result["requests_per_second"], 0.01)
    # Every request reached the server whole, on the path, with the headers.
    assert len(Accepting.seen) >= result["requests"]
    assert set(Accepting.seen) == {("/api/v1/oms/events/", "Token t", b'{"x":1}')}
    assert result["client_cpu_microseconds_per_request"] > 0


def test_other_statuses_are_failures_by_status() -> None:
    class Refusing(Answers):
        status = 400
        body = b'{"detail":"no"}'

    with serve(Refusing) as url:
        result = post_in_loop(url, {}, b"{}", clients=2, warm_up=0.0, duration=0.3)
    assert result["requests"] == 0
    assert result["failed"] > 0 and result["failed_statuses"] == {400: result["failed"]}


def test_an_answer_without_content_length_fails_the_run() -> None:
    class Chunked(Answers):
        chunked = True

    with serve(Chunked) as url:
        with pytest.raises(RuntimeError, match="Content-Length"):
            post_in_loop(url, {}, b"{}", clients=1, warm_up=0.0, duration=0.3)
