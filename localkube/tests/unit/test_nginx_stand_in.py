"""The nginx image's stand-in program: its pages, headers, access log, options and bind errors."""

from __future__ import annotations

import errno
import http.client
import io
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from localkube.node.programs import nginx
from localkube.testing import free_port

COMBINED = re.compile(r'^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                      r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


@pytest.fixture
def server() -> Iterator[tuple[int, io.StringIO]]:
    out = io.StringIO()
    srv = nginx.Server(("127.0.0.1", 0), out=out, err=io.StringIO())
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv.server_address[1], out
    finally:
        srv.shutdown()
        srv.server_close()


def _request(port: int, method: str, path: str, headers: dict[str, str] | None = None
             ) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def test_welcome_page_on_get_and_head(server: tuple[int, io.StringIO]) -> None:
    port, _ = server
    status, headers, body = _request(port, "GET", "/")
    assert status == 200 and b"<title>Welcome to nginx!</title>" in body
    assert headers["Server"] == "nginx" and headers["Content-Type"] == "text/html"
    assert int(headers["Content-Length"]) == len(body)
    status, headers, head_body = _request(port, "HEAD", "/")
    assert status == 200 and head_body == b"" and int(headers["Content-Length"]) == len(body)
    assert _request(port, "GET", "/index.html?x=1")[2] == body


def test_other_paths_and_methods(server: tuple[int, io.StringIO]) -> None:
    port, _ = server
    status, headers, body = _request(port, "GET", "/missing")
    assert status == 404 and b"<title>404 Not Found</title>" in body and headers["Server"] == "nginx"
    assert _request(port, "POST", "/")[0] == 405
    assert _request(port, "POST", "/missing")[0] == 404
    assert _request(port, "DELETE", "/")[0] == 405
    assert _request(port, "PROPFIND", "/")[0] == 405


def test_one_combined_access_line_per_request(server: tuple[int, io.StringIO]) -> None:
    port, out = server
    _request(port, "GET", "/", {"User-Agent": "probe/1.0", "Referer": "http://x/"})
    _request(port, "HEAD", "/")
    _request(port, "GET", "/nope")
    lines = out.getvalue().splitlines()
    matches = [COMBINED.match(line) for line in lines]
    assert all(matches), lines
    fields = [(m["request"], m["status"], m["bytes"]) for m in matches if m]
    page = str(len(nginx.WELCOME))
    assert fields == [("GET / HTTP/1.1", "200", page), ("HEAD / HTTP/1.1", "200", "0"),
                      ("GET /nope HTTP/1.1", "404", str(len(nginx.error_page(404, "Not Found"))))]
    assert matches[0] and matches[0]["agent"] == "probe/1.0" and matches[0]["referer"] == "http://x/"


def test_keep_alive_serves_several_requests_on_one_connection(server: tuple[int, io.StringIO]) -> None:
    port, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.headers["Connection"] == "keep-alive"
            resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["-v"], 0, "nginx version: nginx"),
    (["-V"], 0, "nginx version: nginx"),
    (["-t"], 0, "test is successful"),
    (["-h"], 0, "Usage: nginx"),
    (["-s", "reload"], 1, 'cannot send "reload"'),
    (["-g"], 1, 'option "-g" requires parameter'),
    (["-x"], 1, 'invalid option: "x"'),
    (["daemon"], 1, 'invalid option: "daemon"'),
])
def test_options(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, says: str) -> None:
    assert nginx.main(argv) == code
    assert says in capsys.readouterr().err


def test_a_busy_port_fails_with_nginxs_message(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("", port))
        busy.listen()
        assert nginx.main(["-g", "daemon off;"], port=port) == 1
    err = capsys.readouterr().err
    assert f"nginx: [emerg] bind() to 0.0.0.0:{port} failed ({errno.EADDRINUSE}: " in err
    assert "Another process already listens" in err


def test_a_privileged_port_failure_says_how_to_allow_it() -> None:
    text = nginx.bind_failure(PermissionError(errno.EACCES, "Permission denied"), 80)
    assert text.startswith(f"nginx: [emerg] bind() to 0.0.0.0:80 failed ({errno.EACCES}: Permission denied)")
    assert "net.ipv4.ip_unprivileged_port_start=80" in text and "root" in text


def test_time_local_uses_english_month_names() -> None:
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", nginx.local_time(0))
    assert nginx.local_time(0)[3:6] in nginx.MONTHS
