"""Find, read and load the config file: YAML or JSON, ``${VAR}`` and ``.env``, all issues at once.

Loading never stops at the first problem: reading, interpolation and
validation each collect their issues, and :class:`ConfigError` carries them all.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rolecall.config._document import Document, binary_issue, parse_document
from rolecall.config._env import DotEnv, read_dotenv
from rolecall.config._locations import drop_covered, sort_issues
from rolecall.config._read import FileRefused, file_kind, read_regular_file
from rolecall.config.schema import RolecallConfig
from rolecall.config.validate import validate_document
from rolecall.errors import ConfigError, ConfigIssue

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_FILENAMES",
    "ConfigReport",
    "find_config_path",
    "inspect_config",
    "inspect_config_text",
    "load_config",
    "load_config_text",
    "load_config_with_warnings",
    "read_section",
]

CONFIG_ENV_VAR = "ROLECALL_CONFIG"
DEFAULT_FILENAMES = ("rolecall.yaml", "rolecall.yml", "rolecall.json")
_CREATE_FIX = "run `rolecall init` or pass -c FILE"
_REGULAR_FIX = "pass -c the YAML or JSON config file itself"


@dataclass(frozen=True)
class ConfigReport:
    """Everything known about one config: the loaded config (if valid), errors, warnings."""

    source: str | None
    config: RolecallConfig | None
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.config is not None and not self.errors

    def config_or_raise(self) -> RolecallConfig:
        """The config, or :class:`ConfigError` with every error found."""
        if self.config is None or self.errors:
            raise ConfigError(self.errors, source=self.source)
        return self.config


_NUL_FIX = "no file name can hold one: check how the path was built"


def find_config_path(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """``-c`` value, then ``$ROLECALL_CONFIG``, then ``./rolecall.yaml`` (``.yml``, ``.json``)."""
    env = os.environ if environ is None else environ
    if explicit is not None and not isinstance(explicit, str | os.PathLike):
        raise ConfigError(
            [ConfigIssue("", f"the config path must be a string or a Path, not {explicit!r}")]
        )
    if explicit is not None and os.fspath(explicit) != "":
        path = Path(explicit).expanduser()
        if "\x00" in str(path):
            raise ConfigError(
                [ConfigIssue("", f"the config path {str(path)!r} holds a NUL character", _NUL_FIX)]
            )
        return _existing(path, f"config file {path} not found", f"check the path, or {_CREATE_FIX}")
    named = env.get(CONFIG_ENV_VAR)
    if named:
        path = Path(named).expanduser()
        return _existing(
            path,
            f"${CONFIG_ENV_VAR} names {path}, which does not exist",
            f"fix or unset {CONFIG_ENV_VAR}, or pass -c FILE",
        )
    for name in DEFAULT_FILENAMES:
        candidate = Path(name)
        if candidate.is_file():
            return candidate
    looked = ", ".join(f"./{name}" for name in DEFAULT_FILENAMES)
    raise ConfigError(
        [
            ConfigIssue(
                "",
                f"no config file found (looked at -c, ${CONFIG_ENV_VAR}, {looked})",
                _CREATE_FIX,
            )
        ]
    )


def _existing(path: Path, problem: str, fix: str) -> Path:
    if path.is_dir():
        raise ConfigError(
            [ConfigIssue("", f"{path} is a directory, not a config file", "name the file itself")],
            source=str(path),
        )
    try:
        kind = file_kind(path.stat().st_mode)
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", problem, fix)]) from None
    except OSError:
        return path  # reading it says why it cannot be read
    if kind is not None:
        # A device would be read for ever and a FIFO would block: refused before opening.
        raise ConfigError(
            [ConfigIssue("", f"{path} is {kind}, not a config file", _REGULAR_FIX)],
            source=str(path),
        )
    return path


def inspect_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ConfigReport:
    """Find, read and check the config; never raises for a problem in the file."""
    try:
        found = find_config_path(path, environ=environ)
    except ConfigError as exc:
        return ConfigReport(exc.source, None, exc.issues)
    source = str(found)
    try:
        raw = read_regular_file(found)
    except FileRefused as exc:
        return ConfigReport(source, None, [ConfigIssue("", exc.problem, _REGULAR_FIX)])
    except OSError as exc:
        issue = ConfigIssue(
            "", f"cannot read {found}: {exc.strerror or exc}", "check the file's permissions"
        )
        return ConfigReport(source, None, [issue])
    text = _decode(raw)
    if isinstance(text, ConfigIssue):
        return ConfigReport(source, None, [text])
    return inspect_config_text(text, source=source, base_dir=found.parent, environ=environ)


def inspect_config_text(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigReport:
    """Check config text; ``base_dir/.env`` is read, the real environment winning over it."""
    document, warnings = _parse(text, source, base_dir, environ)
    if document.data is None:
        return ConfigReport(source, None, document.errors, warnings)
    config, errors, more_warnings = validate_document(document.data, document.lines)
    errors = [error for error in errors if error.location not in document.unreadable]
    errors = sort_issues([*document.errors, *errors])
    warnings = drop_covered([*warnings, *more_warnings], errors)
    if errors:
        return ConfigReport(source, None, errors, warnings)
    assert config is not None
    config.set_key_env_vars(document.key_env_vars)
    return ConfigReport(source, config, [], warnings)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> RolecallConfig:
    """The validated config; :class:`ConfigError` lists every problem otherwise."""
    return inspect_config(path, environ=environ).config_or_raise()


def load_config_with_warnings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[RolecallConfig, list[ConfigIssue]]:
    """Like :func:`load_config`, also returning the non-fatal warnings."""
    report = inspect_config(path, environ=environ)
    return report.config_or_raise(), report.warnings


def load_config_text(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> RolecallConfig:
    """Config from text (YAML, or JSON when ``source`` ends with ``.json``)."""
    report = inspect_config_text(text, source=source, base_dir=base_dir, environ=environ)
    return report.config_or_raise()


def read_section(
    path: str | os.PathLike[str], name: str, *, environ: Mapping[str, str] | None = None
) -> object:
    """The top-level ``name`` of the config file at ``path``, its ``${VAR}`` filled in as
    loading does, read even when other sections have problems (a provider's key variable
    unset in this shell); None when the file cannot be read or parsed, or has no such
    section. For a command that needs that section alone."""
    found = Path(path)
    try:
        text = _decode(read_regular_file(found))
    except OSError:
        return None
    if isinstance(text, ConfigIssue):
        return None
    document, _ = _parse(text, found.name, found.parent, environ)
    return document.data.get(name) if isinstance(document.data, dict) else None


def _parse(
    text: str, source: str, base_dir: Path | None, environ: Mapping[str, str] | None
) -> tuple[Document, list[ConfigIssue]]:
    """The document, its ``${VAR}`` filled in from the environment and ``base_dir/.env``
    (the environment winning), and the ``.env`` file's warnings."""
    dotenv = read_dotenv(base_dir / ".env") if base_dir is not None else DotEnv()
    document = parse_document(
        text,
        env={**dotenv.values, **(os.environ if environ is None else environ)},
        is_json=source.lower().endswith(".json"),
        skipped_dotenv=dotenv.skipped,
    )
    return document, list(dotenv.warnings)


def _decode(raw: bytes) -> str | ConfigIssue:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in raw:
        return binary_issue()
    else:
        encoding = "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return ConfigIssue(
            "",
            f"the file is not {encoding.upper().removesuffix('-SIG')} text "
            f"(byte 0x{raw[exc.start]:02x} cannot be decoded)",
            "save it as UTF-8",
            line,
        )
