"""Image directories: which arguments name paths in them (exact matching rules), and the containers' copies."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from localkube.node import imagefs

HTML = "/usr/share/nginx/html"
TABLE = {HTML: "/state/pods/p/containers/web/rootfs/usr/share/nginx/html"}
COPY = TABLE[HTML]


@pytest.mark.parametrize(("argument", "expected"), [
    (HTML, COPY),
    (HTML + "/", COPY + "/"),
    (HTML + "/foo.dat", COPY + "/foo.dat"),
    (HTML + "/a/../b", COPY + "/a/../b"),  # `..` that stays inside
    ("of=" + HTML + "/foo.dat", "of=" + COPY + "/foo.dat"),
    ("--root=" + HTML, "--root=" + COPY),
    ("if=/dev/random", "if=/dev/random"),
    (HTML + "x", HTML + "x"),  # another directory that merely starts the same
    (HTML + "x/foo", HTML + "x/foo"),
    ("of=" + HTML + "x", "of=" + HTML + "x"),
    (HTML + "/..", HTML + "/.."),  # leaves the directory: the host's /usr/share/nginx
    (HTML + "/../../x", HTML + "/../../x"),
    ("/usr/share/nginx", "/usr/share/nginx"),  # its parent is not the image's
    ("usr/share/nginx/html", "usr/share/nginx/html"),  # relative: the working directory decides
    ("cat " + HTML + "/x", "cat " + HTML + "/x"),  # inside a script: not mapped
    ("-o" + HTML + "/x", "-o" + HTML + "/x"),  # glued to a short option: not mapped
    ("a=b=" + HTML, "a=b=" + HTML),  # only after the first `=`
    ("x:" + HTML, "x:" + HTML),
    ("", ""),
])
def test_map_argument(argument: str, expected: str) -> None:
    assert imagefs.map_argument(argument, TABLE) == expected


def test_map_argv_maps_each_argument_and_nothing_without_a_table() -> None:
    argv = ["dd", "if=/dev/random", f"of={HTML}/foo.dat", "bs=4M", "count=10"]
    assert imagefs.map_argv(argv, TABLE) == ["dd", "if=/dev/random", f"of={COPY}/foo.dat", "bs=4M", "count=10"]
    assert imagefs.map_argv(argv, {}) == argv


def test_the_innermost_image_directory_wins() -> None:
    table = {"/srv": "/c/srv", "/srv/www": "/c/www"}
    assert imagefs.map_path("/srv/www/x", table) == "/c/www/x"
    assert imagefs.map_path("/srv/x", table) == "/c/srv/x"
    assert imagefs.map_path("/srv/www/../x", table) == "/c/srv/www/../x"  # left www, still inside /srv
    assert imagefs.map_path("/srvx", table) is None


@pytest.mark.parametrize(("declared", "expected"), [(HTML, HTML), (HTML + "/", HTML), ("/a//b/./c", "/a/b/c")])
def test_image_paths_are_normalised(declared: str, expected: str) -> None:
    assert imagefs.image_path(declared) == expected


@pytest.mark.parametrize("declared", ["relative/path", "/", "//", "/a/.."])
def test_image_paths_must_be_absolute_and_below_the_root(declared: str) -> None:
    with pytest.raises(ValueError, match="absolute path below /"):
        imagefs.image_path(declared)


def test_fresh_copies_are_writable_and_replace_what_an_instance_left(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "index.html").write_text("welcome")
    (source / "sub" / "page.html").write_text("page")
    for path in (source / "sub", source):
        path.chmod(0o555)  # a read-only installation
    root = tmp_path / "rootfs"
    try:
        table = imagefs.fresh_copies(root, {HTML + "/": str(source)})
        copy = root / "usr/share/nginx/html"
        assert table == {HTML: str(copy)}
        assert (copy / "index.html").read_text() == "welcome" and (copy / "sub" / "page.html").read_text() == "page"
        assert stat.S_IMODE(os.stat(copy / "sub").st_mode) & 0o700 == 0o700
        (copy / "foo.dat").write_bytes(b"written by the container")
        (copy / "index.html").write_text("changed")
        imagefs.fresh_copies(root, {HTML: str(source)})  # the next instance
        assert sorted(os.listdir(copy)) == ["index.html", "sub"] and (copy / "index.html").read_text() == "welcome"
    finally:
        for path in (source, source / "sub"):
            path.chmod(0o755)
    assert (source / "index.html").read_text() == "welcome"
