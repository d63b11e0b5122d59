"""What kube-apiserver's pod and service proxy does to responses on their way back: links made to work.

A program behind `.../services/NAME:PORT/proxy/` writes links as if it were served at `/`. The real API server
therefore rewrites, in every proxied (not upgraded) response, a `Location` header and the URL attributes of
`text/html` pages: an absolute path, or a URL naming the backend or the client's own host, gets the proxy prefix
put in front (`/static/x.js` -> `/api/v1/namespaces/NS/services/NAME:PORT/proxy/static/x.js`), unless it already
starts with it; relative links and other hosts are left alone. It also sends the backend `X-Forwarded-Uri` (the
full path the client asked for) and drops the backend's CORS headers. These functions do the same; `proxy.py`
calls them.
"""

from __future__ import annotations

import gzip
import html
import posixpath
import re
import zlib
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

CORS_HEADERS = ("Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
                "Access-Control-Allow-Origin")

# Which attributes of which elements hold a URL (HTML 4.01's attribute index and HTML5's additions).
URL_ATTRIBUTES: dict[str, frozenset[str]] = {tag: frozenset(attrs.split()) for tag, attrs in {
    "a": "href", "applet": "codebase", "area": "href", "audio": "src", "base": "href", "blockquote": "cite",
    "body": "background", "button": "formaction", "command": "icon", "del": "cite", "embed": "src",
    "form": "action", "frame": "longdesc src", "head": "profile", "html": "manifest", "iframe": "longdesc src",
    "img": "longdesc src usemap", "input": "src usemap formaction", "ins": "cite", "link": "href",
    "object": "classid codebase data usemap", "q": "cite", "script": "src", "source": "src",
    "video": "poster src",
}.items()}
# Elements whose content is text, not markup: a `<a href>` inside a script is not a link.
_RAW_TEXT = ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "plaintext")

_MARKUP = re.compile(r"<!--.*?(?:-->|\Z)|<!.*?>|<\?.*?>|<([a-zA-Z][^\s/>]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.S)
_ATTRIBUTE = re.compile(r"""([^\s"'<>/=]+)(?:(\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+))?""")


def clean_join(*parts: str) -> str:
    """Go's `path.Join`: the parts joined by `/` and cleaned (`.`, `..`, `//` resolved); "" for nothing."""
    joined = "/".join(p for p in parts if p)
    if not joined:
        return ""
    cleaned = posixpath.normpath(joined)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def path_prefix(request_path: str, backend_path: str) -> str:
    """The part of the client's path that the backend does not see (kube-apiserver's `PathPrepend`)."""
    suffix = backend_path
    if request_path.endswith("/") and not suffix.endswith("/"):
        suffix += "/"
    return request_path[:-len(suffix)] if suffix and request_path.endswith(suffix) else request_path


def forwarded_uri(prefix: str, backend_path: str) -> str:
    """`X-Forwarded-Uri`: the path as the client asked for it."""
    joined = clean_join(prefix, backend_path)
    return joined + "/" if backend_path.endswith("/") and not joined.endswith("/") else joined


def rewrite_url(target: str, prefix: str, backend_host: str, request_host: str) -> str:
    """A link from the backend as the client must follow it: see the module docstring."""
    try:
        parts = urlsplit(target)
    except ValueError:
        return target
    host = parts.netloc.rpartition("@")[2]
    if (host and host not in (backend_host, request_host)) or not parts.path.startswith("/"):
        return target
    scheme, netloc = (parts.scheme, parts.netloc) if host == request_host else ("", "")
    path = parts.path
    if not path.startswith(prefix):
        joined = clean_join(prefix, path)
        path = joined + "/" if path.endswith("/") and not joined.endswith("/") else joined
    return urlunsplit((scheme, netloc, path, parts.query, parts.fragment))


def rewrite_html(text: str, rewrite: Callable[[str], str]) -> str:
    """`text` with every URL attribute passed through `rewrite`; all other bytes stay as they were."""
    out: list[str] = []
    pos = 0
    while (match := _MARKUP.search(text, pos)) is not None:
        tag = (match.group(1) or "").lower()
        out.append(text[pos:match.start()])
        out.append(_rewrite_tag(match.group(0), tag, match.group(2), rewrite) if tag in URL_ATTRIBUTES
                   else match.group(0))
        pos = match.end()
        if tag in _RAW_TEXT:  # skip to the element's end tag: nothing in between is markup
            end = re.compile(rf"</{tag}[\s/>]", re.I).search(text, pos)
            stop = end.start() if end else len(text)
            out.append(text[pos:stop])
            pos = stop
    out.append(text[pos:])
    return "".join(out)


def _rewrite_tag(whole: str, tag: str, attributes: str, rewrite: Callable[[str], str]) -> str:
    wanted = URL_ATTRIBUTES[tag]

    def one(match: re.Match[str]) -> str:
        name, equals, value = match.groups()
        if value is None or name.lower() not in wanted:
            return match.group(0)
        quote = value[0] if value[0] in "\"'" else ""
        raw = value[1:-1] if quote else value
        url = html.unescape(raw)
        new = rewrite(url)
        if new == url:
            return match.group(0)
        return f'{name}{equals}"{html.escape(new)}"'

    start = 1 + len(tag)  # "<" and the tag name, as written
    return whole[:start] + _ATTRIBUTE.sub(one, attributes) + whole[start + len(attributes):]


def rewrite_html_body(body: bytes, encoding: str, rewrite: Callable[[str], str]) -> bytes | None:
    """An HTML body (gzip, deflate or identity coded) with its links rewritten; None for other codings, which the
    real proxy passes through untouched."""
    encoding = encoding.strip().lower()
    try:
        if encoding == "gzip":
            raw = gzip.decompress(body)
        elif encoding == "deflate":
            raw = _inflate(body)
        elif encoding in ("", "identity"):
            raw = body
        else:
            return None
    except (OSError, EOFError, zlib.error):
        return None
    text = rewrite_html(raw.decode("utf-8", "surrogateescape"), rewrite).encode("utf-8", "surrogateescape")
    if encoding == "gzip":
        return gzip.compress(text)
    if encoding == "deflate":
        return zlib.compress(text)
    return text


def _inflate(body: bytes) -> bytes:
    """HTTP's `deflate` is zlib-wrapped by the standard and raw DEFLATE in practice: accept both."""
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -zlib.MAX_WBITS)
