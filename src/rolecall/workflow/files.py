"""Safe writes into the output directory.

Every path a model names is checked twice, when the plan arrives and again just
before the write: absolute paths, drive letters, ``..``, anything inside ``.git``
(a hook there would run at the next commit), names too long for a file system,
names Windows cannot hold (``CON``, ``nul.py``, a trailing dot or space, ``:``) and
paths that lead out of the output directory through a symlink are refused. Writes are atomic (a
temporary file in the same directory, then ``os.replace``), so a killed run
never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from rolecall._files import atomic_write_text
from rolecall.workflow.errors import OutputDirError, TaskFailed

try:
    import fcntl
except ImportError:  # pragma: no cover - not on this platform: runs are not kept apart
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "OutputDir",
    "UnsafePath",
    "claim_output_dir",
    "normalize_relative",
    "output_dir_problem",
    "write_private",
    "write_problem",
]

_DRIVE = re.compile(r"^[A-Za-z]:")
# Device names Windows reserves whatever the extension (``nul.py`` is the NUL device there).
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", *(f"{d}{n}" for d in ("COM", "LPT") for n in range(1, 10))]
)
# Characters Windows refuses in a name (``a:b`` would write an NTFS alternate data stream).
_NOT_ON_WINDOWS = re.compile(r'[<>:"|?*\x01-\x1f]')
# File systems take names of up to 255 bytes; the atomic write's temporary name adds 14.
MAX_NAME_BYTES = 240


class UnsafePath(ValueError):
    """A path that would write outside the output directory; ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path!r}: {reason}")


def normalize_relative(path: str) -> str:
    """``path`` as a clean relative POSIX path, or :class:`UnsafePath` if it is not one."""
    if not isinstance(path, str) or not path.strip():
        raise UnsafePath(str(path), "empty path")
    if "\x00" in path:
        raise UnsafePath(path, "contains a NUL character")
    text = path.strip().replace("\\", "/")
    if text.startswith("/"):
        raise UnsafePath(path, "absolute path")
    if _DRIVE.match(text):
        raise UnsafePath(path, "drive letter")
    parts = [part for part in PurePosixPath(text).parts if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(path, "'..' leads out of the output directory")
    if not parts:
        raise UnsafePath(path, "names the output directory itself, not a file")
    if parts[0].startswith("~"):
        raise UnsafePath(path, "home-directory shortcut")
    if any(part.casefold() == ".git" for part in parts):
        # A git hook or config written by a model runs the next time git is used here.
        raise UnsafePath(path, "inside .git, which holds git's own config and hooks")
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for part in parts):
        raise UnsafePath(path, f"a file or directory name longer than {MAX_NAME_BYTES} bytes")
    for part in parts:
        if problem := _windows_problem(part):
            raise UnsafePath(path, problem)
    return "/".join(parts)


def _windows_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file or directory name on Windows, or None.

    Refused everywhere: the output is meant to be checked out on any system, and on
    Windows such a name writes to a device or drops its tail, so the file is lost or
    overwrites another while the run reports it written.
    """
    if _NOT_ON_WINDOWS.search(name):
        return f"'{name}' has a character Windows does not allow in a name (<>:\"|?* or control)"
    if name.endswith((".", " ")):
        return f"'{name}' ends in a dot or space, which Windows drops (another file's name)"
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        return f"'{name}' is a device name on Windows (CON, NUL, AUX, COM1...), not a file"
    return None


# What to do about a write that failed, by errno; the run is resumed once it is done.
_WRITE_FIXES = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some space under your disk quota",
    errno.EFBIG: "raise the file size limit (ulimit -f)",
    errno.EROFS: "the file system is read-only: make it writable",
    errno.EACCES: "give this user write permission there",
    errno.EPERM: "give this user write permission there",
}


def write_problem(path: Path, exc: OSError) -> str:
    """One line naming the file that could not be written, why, and what to do."""
    fix = _WRITE_FIXES.get(exc.errno or 0, "fix the cause")
    return f"cannot write {path}: {exc.strerror or exc}; {fix}, then resume the run"


def write_private(path: Path, text: str) -> None:
    """Write one of a run's own files (state, plan, clarified spec, review), which hold the
    spec and the answers: readable by this user only, in a directory only this user can
    open. :class:`TaskFailed` naming the file and the fix when it cannot be written."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_text(path, text, 0o600)
    except OSError as exc:
        raise TaskFailed(write_problem(path, exc)) from None


def output_dir_problem(root: str | Path) -> str | None:
    """Why files could not be written under ``root``, or None when they can.

    Checked before a run spends tokens: ``root`` must be a directory, or absent with a
    directory above it where it can be created. The check really creates what is
    missing and a probe file in it, then removes both, so it leaves nothing behind.
    """
    path = Path(root)
    missing: list[Path] = []
    existing = path
    try:
        while not (existing.exists() or existing.is_symlink()) and existing.parent != existing:
            missing.append(existing)
            existing = existing.parent
    except OSError as exc:  # a directory on the way that cannot be searched
        return f"{path} cannot be reached ({exc.strerror or exc})"
    if not existing.is_dir():
        if existing == path:
            return f"{path} exists and is not a directory"
        return f"{path} is under {existing}, which is not a directory"
    created: list[Path] = []
    try:
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
        fd, probe = tempfile.mkstemp(prefix=".rolecall-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path} cannot be created or written to ({exc.strerror or exc})"
    finally:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
    return None


@contextlib.contextmanager
def claim_output_dir(root: str | Path) -> Iterator[None]:
    """Hold ``root`` for one run: a second run writing there at the same time (the same
    spec twice, or the same run resumed twice) would mix its files and records with
    this one's, so it is refused with :class:`OutputDirError`.

    The lock is an advisory ``flock`` on the directory itself, which the kernel drops
    when the process ends, however it ends. Directories made for it and still empty at
    the end are removed.
    """
    path = Path(root)
    missing: list[Path] = []
    existing = path
    while not (existing.exists() or existing.is_symlink()) and existing.parent != existing:
        missing.append(existing)
        existing = existing.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise OutputDirError(
            f"output directory (-o) {path} cannot be created or opened "
            f"({exc.strerror or exc}): pass -o a writable directory"
        ) from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputDirError(
                    f"output directory (-o) {path} is in use by another rolecall run: "
                    "wait for it to finish, or pass -o another directory"
                ) from None
        yield
    finally:
        os.close(fd)
        for directory in missing:  # deepest first; one with files in it stays
            with contextlib.suppress(OSError):
                directory.rmdir()


class OutputDir:
    """The directory generated files go to; nothing is ever written outside it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def real(self) -> Path:
        return self.root.resolve()

    def target(self, path: str) -> tuple[str, Path]:
        """The normalised relative path and its absolute target; :class:`UnsafePath` if unsafe."""
        relative = normalize_relative(path)
        real_root = self.real
        target = real_root.joinpath(*relative.split("/"))
        # resolve() follows every symlink on the way, including one at the end.
        try:
            resolved = target.resolve()
        except OSError as exc:  # a path too long for the file system, a symlink loop...
            raise _unusable(path, exc) from None
        if not resolved.is_relative_to(real_root):
            raise UnsafePath(path, "a symlink on the way leads out of the output directory")
        return relative, target

    def exists(self, path: str) -> bool:
        _, target = self.target(path)
        try:
            return target.exists() or target.is_symlink()
        except OSError as exc:  # a path too long for the file system...
            raise _unusable(path, exc) from None

    def read(self, path: str) -> str | None:
        """The file's text, or None when it is missing or not readable as UTF-8."""
        _, target = self.target(path)
        try:
            return target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def write(self, path: str, text: str) -> Path:
        """Write atomically; refuses (``UnsafePath``) anything that would land outside."""
        relative, target = self.target(path)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocking = _file_on_the_way(self.real, relative)
            reason = f"'{blocking}' is a file, so nothing can be written under it"
            raise UnsafePath(path, reason) from None
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                # A full disk, a read-only file system: the write failed, say so.
                raise TaskFailed(write_problem(target.parent, exc)) from None
            raise _unusable(path, exc) from None
        # Check again now that the directories exist: one may be a symlink made meanwhile.
        _, target = self.target(relative)
        if target.is_symlink() or target.is_dir():
            raise UnsafePath(path, "exists as a symlink or directory")
        try:
            atomic_write_text(target, text)
        except OSError as exc:
            raise TaskFailed(write_problem(target, exc)) from None
        return target


def _unusable(path: str, exc: OSError) -> UnsafePath:
    return UnsafePath(path, f"cannot be used as a file path ({exc.strerror or exc})")


def _file_on_the_way(root: Path, relative: str) -> str:
    """The first directory of ``relative`` that exists under ``root`` as something else."""
    parts = relative.split("/")[:-1]
    for count in range(1, len(parts) + 1):
        if not root.joinpath(*parts[:count]).is_dir():
            return "/".join(parts[:count])
    return "/".join(parts)
