"""Writes stay inside the output directory, are atomic, and refuse unsafe paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rolecall.workflow.files import OutputDir, UnsafePath, normalize_relative


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../evil.py", "'..'"),
        ("a/../../evil.py", "'..'"),
        ("/etc/x", "absolute"),
        ("\\\\server\\share\\x", "absolute"),
        ("C:\\Windows\\x", "drive letter"),
        ("c:relative.txt", "drive letter"),
        ("~/x", "home"),
        ("", "empty"),
        (".", "output directory itself"),
        (".git/config", ".git"),
        (".GIT/hooks/pre-commit", ".git"),
        ("src/.git/HEAD", ".git"),
        ("a" * 300 + ".py", "longer than 240 bytes"),
        ("d/" + "\u00e9" * 130 + ".py", "longer than 240 bytes"),
        # Names Windows cannot hold: the file would be lost or overwrite another there.
        ("CON", "device name"),
        ("nul.py", "device name"),
        ("src/aux.txt", "device name"),
        ("lib/Com1.c", "device name"),
        ("LPT9", "device name"),
        ("b.py.", "ends in a dot or space"),
        ("pkg./x.py", "ends in a dot or space"),
        ("pkg /x.py", "ends in a dot or space"),
        ("notes:stream.txt", "character Windows does not allow"),
        ("what?.md", "character Windows does not allow"),
        ("tab\there.py", "character Windows does not allow"),
    ],
)
def test_unsafe_relative_paths_are_refused(path: str, reason: str) -> None:
    with pytest.raises(UnsafePath) as info:
        normalize_relative(path)
    assert reason in info.value.reason


def test_normal_paths_are_cleaned() -> None:
    assert normalize_relative("./src//app.py") == "src/app.py"
    assert normalize_relative("src\\app.py") == "src/app.py"
    # Names that only start like a device name, and dotfiles, are fine.
    assert normalize_relative("console.py") == "console.py"
    assert normalize_relative("com10.txt") == "com10.txt"
    assert normalize_relative(".github/ci.yml") == ".github/ci.yml"
    assert normalize_relative("  a.py ") == "a.py"


def test_write_creates_dirs_atomically(tmp_path: Path) -> None:
    out = OutputDir(tmp_path / "out")
    written = out.write("pkg/mod.py", "x = 1\n")
    assert written.read_text() == "x = 1\n"
    assert out.read("pkg/mod.py") == "x = 1\n"
    leftovers = [p.name for p in (tmp_path / "out" / "pkg").iterdir()]
    assert leftovers == ["mod.py"]


def test_symlinked_directory_leading_out_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    out = OutputDir(root)
    with pytest.raises(UnsafePath, match="symlink"):
        out.write("link/evil.py", "boom")
    assert list(outside.iterdir()) == []


def test_symlinked_file_leading_out_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("original")
    root = tmp_path / "out"
    root.mkdir()
    (root / "file.txt").symlink_to(target)
    with pytest.raises(UnsafePath):
        OutputDir(root).write("file.txt", "overwritten")
    assert target.read_text() == "original"


def test_output_dir_that_is_itself_a_symlink_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    OutputDir(tmp_path / "alias").write("a.txt", "ok")
    assert (real / "a.txt").read_text() == "ok"


def test_a_path_too_long_for_the_file_system_is_refused_not_raised(tmp_path: Path) -> None:
    deep = "/".join(["c" * 200] * 30) + ".py"
    out = OutputDir(tmp_path / "out")
    with pytest.raises(UnsafePath, match="cannot be used as a file path"):
        out.exists(deep)
    with pytest.raises(UnsafePath):
        out.write(deep, "x = 1\n")


def test_a_file_where_a_directory_is_needed_is_refused_by_name(tmp_path: Path) -> None:
    out = OutputDir(tmp_path / "out")
    out.write("pkg", "x = 1\n")
    with pytest.raises(UnsafePath, match="'pkg' is a file, so nothing can be written under it"):
        out.write("pkg/sub/mod.py", "y = 2\n")
    assert (tmp_path / "out" / "pkg").read_text() == "x = 1\n"
