"""Image references as a container runtime reads them: `nginx`, `nginx:1.27`, `docker.io/library/nginx@sha256:...`.

The catalog matches images by repository, so every way of writing a Docker Hub name must come out the same
(`nginx`, `library/nginx`, `docker.io/nginx`, `index.docker.io/library/nginx` are one repository), and a name a
runtime could not parse must be reported as the kubelet does (`InvalidImageName`) instead of being looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"  # Docker Hub's official images live under library/
DEFAULT_TAG = "latest"
MAX_NAME = 255

_WORD = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_WORD}(?:/{_WORD})*")
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?")
_TAG = re.compile(r"\w[\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


@dataclass(frozen=True)
class ImageReference:
    """A parsed image name: `repository` always carries its registry (`docker.io/library/nginx`)."""

    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def qualified(self) -> str:
        """The name a runtime pulls: default tag added unless a digest pins the image."""
        if self.digest:
            return f"{self.repository}{':' + self.tag if self.tag else ''}@{self.digest}"
        return f"{self.repository}:{self.tag or DEFAULT_TAG}"


def parse(image: str) -> ImageReference | None:
    """The reference `image` names, or None when a runtime would refuse it as an invalid reference format."""
    rest, at, digest = image.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        return None
    tag = ""
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            return None
    first, slash, remainder = rest.partition("/")
    # Like the Docker CLI: the first component is a registry only if it looks like a host name.
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
        if not _DOMAIN.fullmatch(domain):
            return None
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if not _PATH.fullmatch(path) or len(domain) + 1 + len(path) > MAX_NAME:
        return None
    return ImageReference(f"{domain}/{path}", tag, digest)
