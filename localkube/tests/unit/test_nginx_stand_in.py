"""The nginx image's stand-in program: its static files, headers, access log, options and bind errors."""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from localkube.node.programs import nginx
from localkube.testing import free_port, until

COMBINED = re.compile(r'^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                      r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$')


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container's copy of the image's html directory, as the kubelet makes it."""
    copy = tmp_path / "html"
    shutil.copytree(nginx.PRISTINE_ROOT, copy)
    return copy


@pytest.fixture
def server(root: Path) -> Iterator[tuple[int, io.StringIO]]:
    out = io.StringIO()
    srv = nginx.Server(("127.0.0.1", 0), out=out, err=io.StringIO(), root=str(root))
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
    # A line is written once its response is sent, by the connection's own thread: all three may not be there yet
    # when the client has its last answer, and lines of different connections may come in either order.
    lines = until(lambda: len(out.getvalue().splitlines()) >= 3 and out.getvalue().splitlines(), "three log lines")
    matches = [COMBINED.match(line) for line in lines]
    assert all(matches) and len(matches) == 3, lines
    fields = sorted((m["request"], m["status"], m["bytes"]) for m in matches if m)
    page = str(os.path.getsize(os.path.join(nginx.PRISTINE_ROOT, "index.html")))
    assert fields == sorted([("GET / HTTP/1.1", "200", page), ("HEAD / HTTP/1.1", "200", "0"),
                             ("GET /nope HTTP/1.1", "404", str(len(nginx.error_page(404, "Not Found"))))])
    first = next(m for m in matches if m and m["request"] == "GET / HTTP/1.1")
    assert first["agent"] == "probe/1.0" and first["referer"] == "http://x/"


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


# -- static files ------------------------------------------------------------------------------------------------


def _raw(port: int, request_line: str) -> bytes:
    """A request sent verbatim (clients normalise `..` away before sending)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{request_line}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_the_images_files_are_served_with_their_type_and_dates(server: tuple[int, io.StringIO], root: Path) -> None:
    port, _ = server
    status, headers, body = _request(port, "GET", "/50x.html")
    assert status == 200 and body == (root / "50x.html").read_bytes()
    assert headers["Content-Type"] == "text/html" and headers["Accept-Ranges"] == "bytes"
    mtime = (root / "50x.html").stat().st_mtime
    assert headers["Last-Modified"] == nginx.formatdate(mtime, usegmt=True)
    assert headers["ETag"] == f'"{int(mtime):x}-{len(body):x}"'
    names = {"a.css": "text/css", "b.js": "application/javascript", "c.JSON": "application/json",
             "d.txt": "text/plain", "e.png": "image/png", "f.dat": "application/octet-stream",
             "noextension": "application/octet-stream"}
    for name in names:
        (root / name).write_bytes(b"x")
    for name, kind in names.items():
        status, headers, body = _request(port, "GET", f"/{name}")
        assert (status, headers["Content-Type"], body) == (200, kind, b"x"), name


def test_a_large_file_arrives_intact(server: tuple[int, io.StringIO], root: Path) -> None:
    port, out = server
    data = os.urandom(40 * 1024 * 1024)
    (root / "foo.dat").write_bytes(data)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/foo.dat")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(data) == len(body)
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
        conn.request("HEAD", "/foo.dat")  # the same connection: kept alive after streaming
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"" and int(resp.headers["Content-Length"]) == len(data)
    finally:
        conn.close()
    # Each access-log line is written once its response is sent, so it may follow the client's last read.
    until(lambda: '"HEAD /foo.dat HTTP/1.1" 200 0 ' in out.getvalue(), "the access log of both requests")
    assert '"GET /foo.dat HTTP/1.1" 200 41943040 ' in out.getvalue()


def test_directories_missing_files_and_posts(server: tuple[int, io.StringIO], root: Path) -> None:
    port, _ = server
    (root / "empty").mkdir()
    (root / "site").mkdir()
    (root / "site" / "index.html").write_text("site index")
    status, _, body = _request(port, "GET", "/empty/")
    assert status == 403 and b"<title>403 Forbidden</title>" in body
    status, headers, _ = _request(port, "GET", "/empty")
    assert status == 301 and headers["Location"] == "/empty/"
    assert _request(port, "GET", "/site/")[::2] == (200, b"site index")
    assert _request(port, "GET", "/foo")[0] == 404
    assert _request(port, "GET", "/index.html/")[0] == 404
    assert _request(port, "GET", "/nowhere/")[0] == 404
    status, headers, body = _request(port, "HEAD", "/foo")
    assert status == 404 and body == b"" and int(headers["Content-Length"]) > 0
    assert _request(port, "POST", "/50x.html")[0] == 405
    assert _request(port, "POST", "/foo")[0] == 404


def test_paths_climbing_out_of_the_root_are_refused(server: tuple[int, io.StringIO], root: Path) -> None:
    port, _ = server
    (root.parent / "secret.txt").write_text("outside the root")
    for target in ("/../secret.txt", "/%2e%2e/secret.txt", "/empty/../../secret.txt", "/..%2fsecret.txt"):
        response = _raw(port, f"GET {target} HTTP/1.1")
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (target, response[:80])
        assert b"outside the root" not in response
    response = _raw(port, "GET /nothing/../index.html HTTP/1.1")  # `..` within the root is fine, as for nginx
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and b"Welcome to nginx!" in response


def test_a_single_byte_range(server: tuple[int, io.StringIO], root: Path) -> None:
    port, _ = server
    data = bytes(range(256)) * 4
    (root / "r.bin").write_bytes(data)
    status, headers, body = _request(port, "GET", "/r.bin", {"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], "bytes 10-19/1024")
    assert int(headers["Content-Length"]) == 10
    assert _request(port, "GET", "/r.bin", {"Range": "bytes=-5"})[::2] == (206, data[-5:])
    assert _request(port, "GET", "/r.bin", {"Range": "bytes=1000-"})[::2] == (206, data[1000:])
    assert _request(port, "GET", "/r.bin", {"Range": "bytes=1000-5000"})[::2] == (206, data[1000:])
    status, headers, _ = _request(port, "GET", "/r.bin", {"Range": "bytes=1024-"})
    assert (status, headers["Content-Range"]) == (416, "bytes */1024")
    assert _request(port, "GET", "/r.bin", {"Range": "bytes=0-1,5-6"})[::2] == (200, data)  # several: whole
    assert _request(port, "GET", "/r.bin", {"Range": "lines=1-2"})[::2] == (200, data)
    assert _request(port, "GET", "/r.bin", {"Range": "bytes=0-9", "If-Range": '"stale"'})[::2] == (200, data)


@pytest.mark.parametrize(("url", "expected"), [
    ("/", "R"), ("/index.html", "R/index.html"), ("/a/b/../c", "R/a/c"), ("/a/./b//c", "R/a/b/c"),
    ("/a%20b", "R/a b"), ("/..", None), ("/a/../..", None), ("/%2E%2E/x", None), ("/a%00b", None),
])
def test_file_path_stays_under_the_root(url: str, expected: str | None) -> None:
    assert nginx.file_path("R", url) == expected


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-0", (0, 1)), ("bytes=5-", (5, 10)), ("bytes=-3", (7, 10)), ("bytes=-30", (0, 10)),
    ("bytes=8-100", (8, 10)), ("bytes=5-2", None), ("bytes=a-b", None), ("bytes=-", None), ("bytes=1-2,4-5", None),
    ("items=0-1", None), (None, None),
])
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert nginx.byte_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=-0", "bytes=20-30"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(nginx.Unsatisfiable):
        nginx.byte_range(header, 10)


def test_the_html_root_is_the_containers_copy_when_the_kubelet_names_one() -> None:
    assert nginx.html_root({"LOCALKUBE_IMAGE_PATHS": json.dumps({nginx.HTML_ROOT: "/state/pod/html"})}) == \
        "/state/pod/html"
    assert nginx.html_root({}) == nginx.PRISTINE_ROOT
    assert nginx.html_root({"LOCALKUBE_IMAGE_PATHS": "not json"}) == nginx.PRISTINE_ROOT
    assert sorted(os.listdir(nginx.PRISTINE_ROOT)) == ["50x.html", "index.html"]
