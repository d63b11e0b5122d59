"""A stand-in for the nginx image's `nginx`: what a fresh nginx does, so that manifests written for it work.

It serves the default site on port 80: `GET` and `HEAD` of `/` (or `/index.html`) answer the welcome page, other
paths the 404 page, methods a static site does not take 405. Every response carries `Server: nginx`, and every
request is logged to stdout in nginx's `combined` format (the image sends its access log to stdout too).
TERM, INT and QUIT stop it at once with status 0 (nginx's QUIT would let requests in flight finish first).

The command line takes nginx's options: `-g 'daemon off;'` (it never daemonizes anyway), `-c`, `-p`, `-e` (no
configuration is read: accepted and ignored), `-v`/`-V`, `-t`/`-T`, `-q`, `-h`. `-s SIGNAL` fails: there is no
pid file of a master process to signal.

Port 80 is privileged. As an ordinary user it binds only where `net.ipv4.ip_unprivileged_port_start` is at most
80; otherwise it exits 1 with nginx's `bind() ... failed` message and a line saying how to allow it.
"""

from __future__ import annotations

import errno
import os
import signal
import socketserver
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import TextIO
from urllib.parse import urlsplit

PORT = 80
KEEPALIVE_TIMEOUT = 65  # seconds, nginx's default
VERSION_LINE = "nginx version: nginx (LocalKube stand-in for the nginx image)"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

WELCOME = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>body { max-width: 40em; margin: 2em auto; font-family: sans-serif; }</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>This page comes from LocalKube's stand-in for the nginx image: the pod runs no container, but answers on
port 80 as a freshly installed nginx would.</p>
</body>
</html>
"""
PAGES = {"/", "/index.html"}
ALLOWED = ("GET", "HEAD", "POST")  # the methods nginx's static module looks at; others are 405 at once


def error_page(status: int, reason: str) -> bytes:
    return (f"<html>\n<head><title>{status} {reason}</title></head>\n<body>\n<h1>{status} {reason}</h1>\n"
            "<hr><p>nginx</p>\n</body>\n</html>\n").encode()


def local_time(now: float | None = None) -> str:
    """`$time_local`: `10/Oct/2024:13:55:36 +0000`, with English month names whatever the locale."""
    t = time.localtime(now)
    return f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{time.strftime('%Y:%H:%M:%S %z', t)}"


class Handler(BaseHTTPRequestHandler):
    """The default server block: one page, nginx's headers, one access-log line per request."""

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
        if urlsplit(self.path).path not in PAGES:
            self._respond(404, "Not Found", error_page(404, "Not Found"), body=body)
        elif self.command == "POST":
            self._respond(405, "Not Allowed", error_page(405, "Not Allowed"))
        else:
            self._respond(200, "OK", WELCOME, body=body, last_modified=self.server.started)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests: nginx's short error page, and the connection closes."""
        self.close_connection = True
        reason = self.responses.get(code, ("Error",))[0]
        self._respond(code, reason, error_page(code, reason), body=self.command != "HEAD")

    def _respond(self, status: int, reason: str, page: bytes, *, body: bool = True,
                 last_modified: float | None = None) -> None:
        self.send_response_only(status, reason)
        self.send_header("Server", "nginx")
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        if last_modified is not None:
            self.send_header("Last-Modified", formatdate(last_modified, usegmt=True))
        self.send_header("Connection", "close" if self.close_connection else "keep-alive")
        if status == 200:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        sent = len(page) if body else 0
        if body:
            self.wfile.write(page)
        self.server.log_access(self, status, sent)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threaded TCP server (not `HTTPServer`, which resolves its own name at bind time, a DNS query away)."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.out, self.err = out, err
        self.started = time.time()
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

LocalKube's stand-in for the nginx image: serves the welcome page on port 80 and reads no configuration.
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
