"""A stand-in for the nginx image's `nginx`: what a fresh nginx does, so that manifests written for it work.

It serves the default site on port 80, the static files of the image's `/usr/share/nginx/html`: the container's
own copy, found in `LOCALKUBE_IMAGE_PATHS` (the kubelet's table of the image's directories; without it, the
pristine files next to this script). As nginx's static and index modules: `GET` and `HEAD` of a file (type by
extension, Last-Modified, ETag, a single byte range answered 206), a directory's `index.html` (a directory without
one is 403, a directory without the trailing slash a 301 to it), 404 for anything missing, 400 for a path
climbing above the root, 405 for POST to a file and for methods a static site does not take. Every response
carries `Server: nginx`, and every request is logged to stdout in nginx's `combined` format (the image sends its
access log to stdout too). TERM, INT and QUIT stop it at once with status 0 (nginx's QUIT would let requests in
flight finish first).

The command line takes nginx's options: `-g 'daemon off;'` (it never daemonizes anyway), `-c`, `-p`, `-e` (no
configuration is read: accepted and ignored), `-v`/`-V`, `-t`/`-T`, `-q`, `-h`. `-s SIGNAL` fails: there is no
pid file of a master process to signal.

Port 80 is privileged. As an ordinary user it binds only where `net.ipv4.ip_unprivileged_port_start` is at most
80; otherwise it exits 1 with nginx's `bind() ... failed` message and a line saying how to allow it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socketserver
import stat
import sys
import threading
import time
from collections.abc import Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import TextIO
from urllib.parse import unquote, urlsplit

PORT = 80
KEEPALIVE_TIMEOUT = 65  # seconds, nginx's default
VERSION_LINE = "nginx version: nginx (LocalKube stand-in for the nginx image)"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

HTML_ROOT = "/usr/share/nginx/html"  # the image's default site
PRISTINE_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx-html")
INDEX = "index.html"
DEFAULT_TYPE = "application/octet-stream"
# Content types by extension, as in the image's mime.types for the common ones.
TYPES = {
    "html": "text/html", "htm": "text/html", "shtml": "text/html", "css": "text/css", "xml": "text/xml",
    "txt": "text/plain", "js": "application/javascript", "json": "application/json", "gif": "image/gif",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "svg": "image/svg+xml", "svgz": "image/svg+xml",
    "webp": "image/webp", "ico": "image/x-icon", "pdf": "application/pdf", "zip": "application/zip",
    "wasm": "application/wasm", "woff": "font/woff", "woff2": "font/woff2", "mp3": "audio/mpeg", "mp4": "video/mp4",
}


def html_root(environ: Mapping[str, str] = os.environ) -> str:
    """The container's copy of the image's html directory (from the kubelet's table), else the pristine files."""
    try:
        table = json.loads(environ.get("LOCALKUBE_IMAGE_PATHS") or "{}")
    except ValueError:
        table = {}
    root = table.get(HTML_ROOT) if isinstance(table, dict) else None
    return root if isinstance(root, str) and root else PRISTINE_ROOT


def content_type(path: str) -> str:
    _stem, dot, extension = os.path.basename(path).rpartition(".")
    return TYPES.get(extension.lower(), DEFAULT_TYPE) if dot else DEFAULT_TYPE


def file_path(root: str, url_path: str) -> str | None:
    """The file a request path names under `root`, or None when `..` would climb above it (nginx: 400)."""
    path = unquote(url_path, errors="surrogateescape")
    if "\0" in path or not path.startswith("/"):
        return None
    parts: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if not parts:
                return None
            parts.pop()
        elif segment not in ("", "."):
            parts.append(segment)
    return os.path.join(root, *parts)


class Unsatisfiable(Exception):
    """A byte range that starts past the end of the file (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single range of a `Range` header as (start, end exclusive); None to send the whole file (no header,
    one nginx ignores, or several ranges, which this stand-in answers whole)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, dash, last = header[6:].strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) or (
            last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        if int(last) == 0:
            raise Unsatisfiable
        return max(size - int(last), 0), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size:
        raise Unsatisfiable
    return (start, end) if end > start else None


def error_page(status: int, reason: str) -> bytes:
    """nginx's built-in page for an error status."""
    return (f"<html>\n<head><title>{status} {reason}</title></head>\n<body>\n<h1>{status} {reason}</h1>\n"
            "<hr><p>nginx</p>\n</body>\n</html>\n").encode()


def local_time(now: float | None = None) -> str:
    """`$time_local`: `10/Oct/2024:13:55:36 +0000`, with English month names whatever the locale."""
    t = time.localtime(now)
    return f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{time.strftime('%Y:%H:%M:%S %z', t)}"


class Handler(BaseHTTPRequestHandler):
    """The default server block: static files, nginx's headers, one access-log line per request."""

    protocol_version = "HTTP/1.1"  # keep-alive, as nginx
    timeout = KEEPALIVE_TIMEOUT
    server: Server

    def version_string(self) -> str:
        return "nginx"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Logged by `_respond` instead, once the body size is known."""

    def log_message(self, format: str, *args: object) -> None:
        self.server.log_error(format % args)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_POST(self) -> None:
        self._serve(body=True)

    def __getattr__(self, name: str) -> object:
        if name.startswith("do_") and name[3:].isupper():  # any other method: the static module refuses it
            return lambda: self._respond(405, "Not Allowed", error_page(405, "Not Allowed"))
        raise AttributeError(name)

    def _serve(self, *, body: bool) -> None:
        url_path = urlsplit(self.path).path
        path = file_path(self.server.root, url_path)
        if path is None:
            self.send_error(400)
        elif url_path.endswith("/"):  # the index module: the directory's index.html, or 403 without one
            if not os.path.isdir(path):
                self._error(404, body)
            elif os.path.isfile(os.path.join(path, INDEX)):
                self._file(os.path.join(path, INDEX), body)
            else:
                self._error(403, body)
        elif os.path.isdir(path):
            self._respond(301, "Moved Permanently", error_page(301, "Moved Permanently"), body=body,
                          headers={"Location": url_path + "/"})
        else:
            self._file(path, body)

    def _error(self, status: int, body: bool) -> None:
        reason = self.responses[status][0] if status != 405 else "Not Allowed"
        self._respond(status, reason, error_page(status, reason), body=body)

    def _file(self, path: str, body: bool) -> None:
        """A static file, streamed with sendfile; 404 when missing or not a regular file, 403 when unreadable."""
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed below, after streaming)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return self._error(404, body)
        except OSError:
            return self._error(403, body)
        with f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return self._error(404, body)
            if self.command == "POST":
                return self._error(405, body)
            size = st.st_size
            modified = formatdate(st.st_mtime, usegmt=True)
            headers = {"Last-Modified": modified, "ETag": f'"{int(st.st_mtime):x}-{size:x}"'}
            try:
                span = byte_range(self._range_header(headers), size)
            except Unsatisfiable:
                return self._respond(416, "Requested Range Not Satisfiable",
                                     error_page(416, "Requested Range Not Satisfiable"), body=body,
                                     headers={"Content-Range": f"bytes */{size}"})
            start, end = span or (0, size)
            if span is not None:
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            status, reason = (206, "Partial Content") if span is not None else (200, "OK")
            self._head(status, reason, end - start, content_type(path), headers)
            sent = 0
            if body and end > start:
                try:
                    sent = self.connection.sendfile(f, start, end - start)
                except OSError:  # the client went away: log what it got
                    self.close_connection = True
                    sent = max(f.tell() - start, 0)
            self.server.log_access(self, status, sent)
        return None

    def _range_header(self, validators: dict[str, str]) -> str | None:
        """`Range`, unless an `If-Range` names another version of the file."""
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range not in validators.values():
            return None
        return self.headers.get("Range")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests: nginx's short error page, and the connection closes."""
        self.close_connection = True
        reason = self.responses.get(code, ("Error",))[0]
        self._respond(code, reason, error_page(code, reason), body=self.command != "HEAD")

    def _respond(self, status: int, reason: str, page: bytes, *, body: bool = True,
                 headers: Mapping[str, str] | None = None) -> None:
        """A page from memory (nginx's error pages)."""
        self._head(status, reason, len(page), "text/html", headers or {})
        sent = len(page) if body else 0
        if body:
            self.wfile.write(page)
        self.server.log_access(self, status, sent)

    def _head(self, status: int, reason: str, length: int, kind: str, headers: Mapping[str, str]) -> None:
        self.send_response_only(status, reason)
        self.send_header("Server", "nginx")
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        if status in (200, 206):
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threaded TCP server (not `HTTPServer`, which resolves its own name at bind time, a DNS query away)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                 root: str | None = None) -> None:
        self.out, self.err = out, err
        self.root = root if root is not None else html_root()
        self._lock = threading.Lock()
        super().__init__(address, Handler)

    def log_access(self, handler: Handler, status: int, sent: int) -> None:
        """nginx's `combined` format."""
        headers = getattr(handler, "headers", None)  # absent when the request line did not parse
        referer = headers.get("Referer", "-") if headers else "-"
        agent = headers.get("User-Agent", "-") if headers else "-"
        line = (f'{handler.client_address[0]} - - [{local_time()}] "{handler.requestline}" {status} {sent} '
                f'"{referer}" "{agent}"\n')
        with self._lock:
            self.out.write(line)
            self.out.flush()

    def log_error(self, message: str) -> None:
        with self._lock:
            self.err.write(f"{time.strftime('%Y/%m/%d %H:%M:%S')} [error] {os.getpid()}#0: {message}\n")
            self.err.flush()


def bind_failure(err: OSError, port: int) -> str:
    """nginx's message for a failed bind, and what to do about it on a LocalKube node."""
    code = err.errno or 0
    text = f"nginx: [emerg] bind() to 0.0.0.0:{port} failed ({code}: {os.strerror(code) if code else err})\n"
    if code in (errno.EACCES, errno.EPERM):
        text += (f"LocalKube runs this nginx as an ordinary process of user {os.geteuid()}: port {port} needs root, "
                 f"or `sysctl net.ipv4.ip_unprivileged_port_start={port}` (or lower) on this machine.\n")
    elif code == errno.EADDRINUSE:
        text += (f"Another process already listens on port {port} of this pod's address (with hostNetwork, or "
                 "without LocalKube's pod network, all pods share one address).\n")
    return text


USAGE = """Usage: nginx [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-c filename] [-g directives]

LocalKube's stand-in for the nginx image: serves /usr/share/nginx/html on port 80 and reads no configuration.
"""


def main(argv: list[str], port: int = PORT) -> int:
    """Run as `nginx ARGS...`; `port` is there for tests (the image's nginx always listens on 80)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag = arg[1:2] if arg.startswith("-") else ""
        if flag in ("?", "h"):
            sys.stderr.write(USAGE)
            return 0
        if flag in ("v", "V"):
            sys.stderr.write(VERSION_LINE + "\n")
            return 0
        if flag in ("t", "T"):
            sys.stderr.write("nginx: the stand-in reads no configuration file: test is successful\n")
            return 0
        if flag == "q":
            i += 1
            continue
        if flag in ("c", "g", "p", "e", "s"):
            value = arg[2:] or (argv[i + 1] if i + 1 < len(argv) else None)
            if value is None:
                sys.stderr.write(f'nginx: option "-{flag}" requires parameter\n')
                return 1
            if flag == "s":
                sys.stderr.write(f'nginx: [error] cannot send "{value}": the LocalKube stand-in runs no master '
                                 "process with a pid file; signal the container instead\n")
                return 1
            i += 1 if arg[2:] else 2
            continue
        sys.stderr.write(f'nginx: invalid option: "{arg.lstrip("-") or arg}"\n')
        return 1
    try:
        server = Server(("", port))
    except OSError as err:
        sys.stderr.write(bind_failure(err, port))
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.stdout.flush()
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, stop)
    with server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
