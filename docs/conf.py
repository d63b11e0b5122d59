"""Sphinx configuration of the dask_kube documentation: `make docs` (sphinx-build -W -b html docs docs/_build/html).

The pages are the Markdown files of docs/ (MyST); `resources.md` renders the CRD reference from
`dask_kube.operator.crd_schemas.crds()` through the local extension in `_ext/crd_reference.py`, and `api.md` the
API reference from docstrings (autodoc). LocalKube, a distribution of its own, keeps its docs in localkube/:
`localkube.md` and `localkube-networking.md` render them, with their links between each other rewritten.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))

import dask_kube  # noqa: E402

project = "dask_kube"
author = "the dask_kube developers"
copyright = "the dask_kube developers, BSD-3-Clause"
release = dask_kube.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "crd_reference",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # `[text](page.md#a-heading)` links, as GitHub renders them

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# Pages that are being written: index.md lists them, and until a file exists its toctree entry is left out (a
# toctree entry for a missing page is a warning, and warnings fail the build).
PENDING_PAGES = ("kubecluster", "daskjob", "autoscaling", "migration")

html_theme = "furo"
html_title = f"dask_kube {release}"


def _drop_pending_pages(app, docname, source):  # type: ignore[no-untyped-def]
    if docname != root_doc:
        return
    for page in PENDING_PAGES:
        if not (HERE / f"{page}.md").exists():
            source[0] = source[0].replace(f"\n{page}\n", "\n")


# Pages whose text lives in LocalKube's folder: docname -> (file, {link in that file: link on this site}).
LOCALKUBE = HERE.parent / "localkube"
BORROWED_PAGES = {
    "localkube": (LOCALKUBE / "README.md", {"(docs/networking.md)": "(localkube-networking.md)",
                                             "(../README.md)": "(index.md)"}),
    "localkube-networking": (LOCALKUBE / "docs" / "networking.md", {}),
}


def _borrow_pages(app, docname, source):  # type: ignore[no-untyped-def]
    if docname not in BORROWED_PAGES:
        return
    path, links = BORROWED_PAGES[docname]
    text = path.read_text()
    for old, new in links.items():
        text = text.replace(old, new)
    source[0] = text


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("source-read", _drop_pending_pages)
    app.connect("source-read", _borrow_pages)
