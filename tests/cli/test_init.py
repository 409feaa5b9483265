"""``rolecall init``: detection from the environment and loopback, the table, the written file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/discover_helpers.py

from discover_helpers import KEY_VARS, PORTS_ENV_VAR, ollama, ports_env
from rolecall.cli import main
from rolecall.config.load import load_config
from rolecall.setup.discover import find_embedded

SECRET = "sk-test-not-a-real-key-0123456789"
EMBEDDED = find_embedded().available


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real keys, cloud logins or servers: only what each test sets."""
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # where ~/.aws, ~/.azure and gcloud would be
    monkeypatch.setenv(PORTS_ENV_VAR, ports_env())
    monkeypatch.chdir(tmp_path)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["init", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _assignments(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, dict[str, object]]:
    code, out, _ = _run(capsys, "--json", *args)
    assert code == 0
    return {a["role"]: a for a in json.loads(out)["assignments"]}


def test_no_keys_runs_every_role_locally(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--dry-run")
    assert code == 0
    assert "type: local" in out
    for role in ("clarifier", "planner", "coder", "reviewer"):
        assert f"  {role}:" in out  # YAML
    assert "role assignments" in out and "reviewer" in out  # the table
    if not EMBEDDED:
        assert "pip install" in err  # says how to get the model it assigned
    assert not Path("rolecall.yaml").exists()  # dry run writes nothing
    roles = _assignments(capsys, "--dry-run")
    assert {a["provider"] for a in roles.values()} == {"local"}


def test_one_key_writes_a_loadable_file_without_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    code, out, _ = _run(capsys)
    assert code == 0 and "wrote rolecall.yaml" in out
    text = Path("rolecall.yaml").read_text()
    assert SECRET not in text and SECRET not in out
    assert "api_key: ${ANTHROPIC_API_KEY}" in text
    config = load_config("rolecall.yaml", environ={"ANTHROPIC_API_KEY": SECRET})
    assert config.providers["claude"].model == "claude-sonnet-4-5"
    assert config.roles["clarifier"].provider == "claude-haiku"
    assert config.roles["planner"].provider == "claude"
    if EMBEDDED:
        assert all(config.chain(role)[-1] == "local" for role in config.roles)


def test_three_keys_and_ollama_spread_roles_and_end_on_local(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, SECRET)
    with ollama("llama3.2:latest") as fake:
        monkeypatch.setenv(PORTS_ENV_VAR, ports_env(ollama=fake.port))
        roles = _assignments(capsys, "--dry-run")
        code, _, _ = _run(capsys, "-o", "team.yaml")
    assert code == 0
    assert fake.requests and all(r == "GET /api/tags" for r in fake.requests)  # no prompt sent
    assert roles["planner"]["model"] == "claude-sonnet-4-5"
    assert roles["clarifier"]["model"] == "gpt-4.1-mini"
    assert roles["coder"]["provider"] == "gpt" and roles["reviewer"]["provider"] == "gemini"
    local_tail = ["ollama", "local"] if EMBEDDED else ["ollama"]
    for assignment in roles.values():
        fallback = assignment["fallback"]
        assert isinstance(fallback, list) and fallback[-len(local_tail) :] == local_tail
        assert assignment["reason"]
    config = load_config("team.yaml", environ={v: SECRET for v in KEY_VARS})
    assert config.providers["ollama"].base_url == f"http://127.0.0.1:{fake.port}/v1"
    assert config.providers["ollama"].model == "llama3.2:latest"
    assert SECRET not in Path("team.yaml").read_text()


def test_existing_file_needs_force(capsys: pytest.CaptureFixture[str]) -> None:
    Path("rolecall.yaml").write_text("# mine\n")
    code, _, err = _run(capsys)
    assert code == 2 and "--force" in err
    assert Path("rolecall.yaml").read_text() == "# mine\n"
    code, _, _ = _run(capsys, "--force")
    assert code == 0 and "providers:" in Path("rolecall.yaml").read_text()


@pytest.mark.parametrize("force", [(), ("--force",)])
def test_a_directory_as_output_is_refused_naming_a_file(
    capsys: pytest.CaptureFixture[str], force: tuple[str, ...]
) -> None:
    Path("conf").mkdir()
    code, out, err = _run(capsys, "-o", "conf", *force)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"error: conf names a directory: -o takes the config file's name, "
        f"e.g. -o {Path('conf') / 'rolecall.yaml'}"
    ]
    assert list(Path("conf").iterdir()) == []


@pytest.mark.parametrize("blank", ["", " "])
def test_an_empty_output_name_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str], blank: str
) -> None:
    code, out, err = _run(capsys, "-o", blank)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: -o is empty: give the config file's name, e.g. -o rolecall.yaml"
    ]


def test_bad_port_override_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PORTS_ENV_VAR, "ollama=lots")
    code, _, err = _run(capsys, "--dry-run")
    assert code == 2 and PORTS_ENV_VAR in err and "Traceback" not in err


# Model names a broken or hostile local server may list: an ANSI escape and a bell, rich
# markup, a line break and YAML syntax, and a lone surrogate (valid JSON, not UTF-8).
HOSTILE_MODELS = ("esc\x1b[31mred\x07", "m[/bold]x[red]", "two\nlines: #{x}", "bad\ud800name")


def test_hostile_model_names_write_a_file_that_reads_back_the_same_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ollama(*HOSTILE_MODELS) as fake:
        monkeypatch.setenv(PORTS_ENV_VAR, ports_env(ollama=fake.port))
        code, out, err = _run(capsys)
        assert code == 0, err
        for first in HOSTILE_MODELS[1:3]:  # each as the server's first, best, model
            with ollama(first, HOSTILE_MODELS[0]) as other:
                monkeypatch.setenv(PORTS_ENV_VAR, ports_env(ollama=other.port))
                assert _run(capsys, "-o", "other.yaml", "--force")[0] == 0
            config = load_config("other.yaml", environ={})
            assert config.providers["ollama"].model == first
    config = load_config("rolecall.yaml", environ={})
    assert config.providers["ollama"].model == HOSTILE_MODELS[0]
    # The table and notes show control characters as escapes, markup as written.
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert "esc\\x1b[31mred\\x07" in out
    text = Path("rolecall.yaml").read_text(encoding="utf-8")
    assert "\x1b" not in text and "bad" not in text  # a name no request could carry is left out


def test_a_model_named_like_a_variable_reference_is_written_as_that_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with ollama("${OPENAI_API_KEY}", "a$${b}") as fake:
        monkeypatch.setenv(PORTS_ENV_VAR, ports_env(ollama=fake.port))
        code, _, err = _run(capsys)
    assert code == 0, err
    config = load_config("rolecall.yaml", environ={"OPENAI_API_KEY": SECRET})
    # The name the server listed, not the key it names: the key is never sent to it.
    assert config.providers["ollama"].model == "${OPENAI_API_KEY}"


def test_a_symlink_counts_as_an_existing_file_and_force_writes_its_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "dotfiles" / "rolecall.yaml"
    Path("rolecall.yaml").symlink_to(target)  # leads nowhere yet
    target.parent.mkdir()
    code, _, err = _run(capsys)
    assert code == 2 and "already exists: pass --force" in err
    assert not target.exists()
    code, _, _ = _run(capsys, "--force")
    assert code == 0
    assert Path("rolecall.yaml").is_symlink()  # still the user's link
    assert "providers:" in target.read_text()


def test_force_keeps_the_permissions_of_the_file_it_replaces(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("rolecall.yaml").write_text("# mine\n")
    Path("rolecall.yaml").chmod(0o600)
    assert _run(capsys, "--force")[0] == 0
    assert Path("rolecall.yaml").stat().st_mode & 0o777 == 0o600


# Runs init with files limited to 200 bytes: its write fails part way, as on a full disk.
LIMITED_INIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
from rolecall.cli import main
sys.exit(main(["init", "--force"]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file size limit")
def test_a_failed_overwrite_leaves_the_old_file_as_it_was() -> None:
    mine = "# my hand-edited config\nschema_version: 1\n"
    Path("rolecall.yaml").write_text(mine)
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run(
        [sys.executable, "-c", LIMITED_INIT],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot write rolecall.yaml: File too large")
    assert Path("rolecall.yaml").read_text() == mine
    assert [p.name for p in Path().iterdir()] == ["rolecall.yaml"]  # no temporary left
