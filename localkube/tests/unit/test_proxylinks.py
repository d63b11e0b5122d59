"""The proxy's path handling and link rewriting, case by case against what kube-apiserver does (no server)."""

from __future__ import annotations

import gzip

import pytest

from localkube.apiserver import proxy, proxylinks
from localkube.apiserver.errors import ApiError

PREFIX = "/api/v1/namespaces/ns/services/web:http/proxy"
BACKEND, CLIENT = "127.20.0.5:8080", "127.0.0.1:6443"


@pytest.mark.parametrize(("link", "expected"), [
    ("/static/app.js", f"{PREFIX}/static/app.js"),
    ("/", f"{PREFIX}/"),
    ("/a/../b/?q=1#top", f"{PREFIX}/b/?q=1#top"),
    (f"http://{BACKEND}/status", f"{PREFIX}/status"),  # the backend's own address becomes the proxy's path
    (f"https://{CLIENT}/status", f"https://{CLIENT}{PREFIX}/status"),  # the client's host is kept
    (f"{PREFIX}/already", f"{PREFIX}/already"),
    ("relative/page", "relative/page"),
    ("http://example.com/far", "http://example.com/far"),
    ("//cdn.example.com/x.js", "//cdn.example.com/x.js"),
    ("#section", "#section"),
    ("javascript:void(0)", "javascript:void(0)"),
    ("mailto:a@b.c", "mailto:a@b.c"),
])
def test_rewrite_url(link: str, expected: str) -> None:
    assert proxylinks.rewrite_url(link, PREFIX, BACKEND, CLIENT) == expected


def test_rewrite_html_changes_url_attributes_only() -> None:
    page = ('<!-- <a href="/in-comment"> --><A HREF=/x class="/not-a-url">t</A>'
            "<script src='/s.js'>if (a<b) { x = '<img src=\"/no\">' }</script>"
            '<form action="/go" method=post>'
            '<input type=image src="/i.png" formaction=/f></form>'
            '<img alt="a > b" src="/pic.png?a=1&amp;b=2">')
    out = proxylinks.rewrite_html(page, lambda url: proxylinks.rewrite_url(url, "/proxied", BACKEND, CLIENT))
    assert out == ('<!-- <a href="/in-comment"> --><A HREF="/proxied/x" class="/not-a-url">t</A>'
                   "<script src=\"/proxied/s.js\">if (a<b) { x = '<img src=\"/no\">' }</script>"
                   '<form action="/proxied/go" method=post>'
                   '<input type=image src="/proxied/i.png" formaction="/proxied/f"></form>'
                   '<img alt="a > b" src="/proxied/pic.png?a=1&amp;b=2">')


def test_rewrite_html_body_keeps_the_content_coding() -> None:
    page = b'<a href="/x">\xff</a>'  # not even UTF-8: bytes other than links come back as they were

    def rewrite(url: str) -> str:
        return proxylinks.rewrite_url(url, "/proxied", BACKEND, CLIENT)

    assert proxylinks.rewrite_html_body(page, "", rewrite) == b'<a href="/proxied/x">\xff</a>'
    assert gzip.decompress(proxylinks.rewrite_html_body(gzip.compress(page), "gzip", rewrite) or b"") == \
        b'<a href="/proxied/x">\xff</a>'
    assert proxylinks.rewrite_html_body(page, "br", rewrite) is None  # passed through untouched


@pytest.mark.parametrize(("request_path", "expected"), [
    (f"{PREFIX}", ""),
    (f"{PREFIX}/", "/"),
    (f"{PREFIX}/a/b", "/a/b"),
    (f"{PREFIX}/a//b/", "/a/b/"),
    (f"{PREFIX}/a/./c/../b", "/a/b"),
])
def test_backend_path(request_path: str, expected: str) -> None:
    assert proxy.backend_path(request_path, PREFIX) == expected


def test_forwarded_uri_and_prefix() -> None:
    assert proxylinks.path_prefix(f"{PREFIX}/a/b/", "/a/b/") == PREFIX
    assert proxylinks.forwarded_uri(PREFIX, "/a/b/") == f"{PREFIX}/a/b/"
    assert proxylinks.path_prefix(f"{PREFIX}/", "/") == PREFIX
    assert proxylinks.forwarded_uri(PREFIX, "") == PREFIX


@pytest.mark.parametrize(("ident", "expected"), [
    ("web", ("http", "web", "")),
    ("web:8080", ("http", "web", "8080")),
    ("web:http-dashboard", ("http", "web", "http-dashboard")),
    ("https:web:443", ("https", "web", "443")),
    ("http:web:", ("http", "web", "")),
])
def test_split_target(ident: str, expected: tuple[str, str, str]) -> None:
    assert proxy.split_target(ident, "service") == expected


@pytest.mark.parametrize("ident", ["ftp:web:21", ":80", "a:b:c:d"])
def test_split_target_refuses(ident: str) -> None:
    with pytest.raises(ApiError) as err:
        proxy.split_target(ident, "pod")
    assert (err.value.code, err.value.message) == (400, f'invalid pod request "{ident}"')
