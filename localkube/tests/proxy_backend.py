"""A web server for the proxy tests, run in a pod as `python -c SOURCE PORT [CERT KEY]` (HTTPS with a certificate):
standard library only, so it runs in the stock `python` image of any cluster.

- any method on `/echo/...`: JSON of what arrived (method, target, headers, body size, sha256 and text);
- `/bytes?size=N`: N deterministic bytes (`pattern(N)`), with Content-Length;
- `/stream`: a chunked reply whose first part is sent at once and the rest only after `POST /release`;
- `/redirect`: 302 to `/echo/target`; `/page`: an HTML page with links of every kind;
- `/ws`: a WebSocket that first sends the request's target and headers as JSON, then echoes every message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RELEASE = threading.Event()
PAGE = ('<!DOCTYPE html><html><head><link rel="stylesheet" href="/static/app.css">'
        '<script src="/static/app.js"></script><script>var u = "<a href=\'/no\'>";</script></head>'
        '<body><a href="/echo/abs?x=1&amp;y=2">abs</a> <a href="rel/page">rel</a> '
        '<a href="http://example.com/far">far</a> <img src=/img/logo.png alt=logo></body></html>')


def pattern(size: int) -> bytes:
    """The `/bytes` body: a counter's bytes, so that any lost, doubled or reordered block changes its digest."""
    block = b"".join(struct.pack(">I", i) for i in range(16384))
    return (block * (size // len(block) + 1))[:size]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.command} {self.path}\n")

    def body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self) -> None:
        path = self.path.split("?")[0]
        if self.headers.get("Upgrade", "").lower() == "websocket" and path == "/ws":
            return self.websocket()
        data = self.body()
        if path.startswith("/echo"):
            seen = {"method": self.command, "target": self.path, "headers": dict(self.headers.items()),
                    "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    "text": data[:200].decode("utf-8", "replace")}
            self.reply(200, json.dumps(seen).encode(), headers={"Access-Control-Allow-Origin": "*"})
        elif path == "/bytes":
            self.reply(200, pattern(int(self.path.split("size=")[1])), "application/octet-stream")
        elif path == "/stream":
            self.stream()
        elif path == "/release":
            RELEASE.set()
            self.reply(200, b"{}")
        elif path == "/redirect":
            self.reply(302, b"", "text/plain", {"Location": "/echo/target"})
        elif path == "/page":
            self.reply(200, PAGE.encode(), "text/html; charset=utf-8")
        else:
            self.reply(404, b'{"error": "no such path"}')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any

    def stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        chunk(b"first\n")
        RELEASE.wait(60)
        RELEASE.clear()
        for i in range(3):
            chunk(b"more %d\n" % i)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def websocket(self) -> None:
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        self.send_frame(1, json.dumps({"target": self.path, "headers": dict(self.headers.items())}).encode())
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:
                self.send_frame(8, payload[:2])
                return
            self.send_frame(10 if opcode == 9 else opcode, payload)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        length = bytes([size]) if size < 126 else (
            b"\x7e" + struct.pack(">H", size) if size < 65536 else b"\x7f" + struct.pack(">Q", size))
        self.wfile.write(bytes([0x80 | opcode]) + length + payload)
        self.wfile.flush()


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
    if len(sys.argv) > 3:  # PORT CERT KEY: serve HTTPS
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
