"""``rolecall run``: exit codes, one-line errors, JSON output, refused paths, answers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from workflow_helpers import SPEC, Team, plan_files, started_servers, write_config

from rolecall.cli import main
from rolecall.sim import SimServer

ROLES = {
    "clarifier": {"provider": "gem"},
    "planner": {"provider": "claude"},
    "reviewer": {"provider": "claude"},
    "coder": {"provider": "gpt"},
}


@pytest.fixture
def sims() -> Iterator[dict[str, SimServer]]:
    with started_servers({"gem": "google", "claude": "anthropic", "gpt": "openai"}) as servers:
        yield servers


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.md", b"", "is empty"),
        ("binary.md", bytes(range(256)), "binary"),
        ("bad.md", b"\xff\xfe\xfa not utf-8", "not UTF-8"),
        ("bad.yaml", b"name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_spec_is_one_clear_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, expected: str
) -> None:
    spec = tmp_path / name
    spec.write_bytes(content)
    code, out, err = run_cli(capsys, str(spec), "-c", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: spec ") and expected in lines[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("verify: 5", "verify is a number (5), not a list of commands"),
        ('verify: "python -c 1"', 'verify: ["python -c 1"]'),
        ("verify: [{a: 1}, [2]]", "verify[0] is a mapping, not a command"),
        ("foo: bar", "has no description (keys: foo): add description:"),
    ],
)
def test_badly_typed_yaml_spec_exits_2_before_any_provider_call(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sims: dict[str, SimServer],
    content: str,
    expected: str,
) -> None:
    for server in sims.values():
        server.responder = Team(plan_files("a.py"))
    spec = tmp_path / "spec.yaml"
    header = "" if content.startswith("foo") else "name: t\ndescription: say hello\n"
    spec.write_text(header + content + "\n")
    config = write_config(tmp_path, sims, ROLES)
    code, out, err = run_cli(capsys, str(spec), "-c", str(config), "-o", str(tmp_path / "out"))
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: spec {spec}") and expected in line
    assert all(server.calls == 0 and server.model_calls == 0 for server in sims.values())
    assert not (tmp_path / "out").exists()


def test_missing_spec_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys)
    assert code == 2 and "missing SPEC" in err


def test_bad_answers_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    answers = tmp_path / "answers.yaml"
    answers.write_text("- just\n- a list\n")
    code, _, err = run_cli(capsys, str(spec), "--answers", str(answers))
    assert code == 2 and "must map question ids" in err
    code, _, err = run_cli(capsys, str(spec), "--answers", str(tmp_path / "nope.yaml"))
    assert code == 2 and "answers file not found" in err


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "answers.yaml",
            b"lang: go\nsize: [1, 2\nmore: 3\n",
            "is not valid YAML (line 3, column 5): expected ',' or ']', but got ':'",
        ),
        ("answers.json", b'{"lang": "go",}', "is not valid JSON (line 1, column 15"),
        ("answers.yaml", b"\xfa\xfb\xfc", "is not UTF-8 text (invalid byte at offset 0)"),
        ("answers.yaml", b"lang: \x00\x01", "looks like a binary file"),
        ("answers", None, "is a directory: pass a YAML or JSON file, e.g. --answers "),
        ("answers.yaml", b"lang: &a [go, *a]\n", "an alias (*name) inside what it names"),
        ("answers.json", b'{"lang": "go \\ud800"}', "\\ud800 is half of a UTF-16 pair"),
        # Not text: it would reach the prompts as "['python', 'go']".
        ("answers.yaml", b"lang: [python, go]\n", "gives 'lang' a list as its answer"),
        ("answers.json", b'{"db": {"kind": "pg"}}', "gives 'db' a mapping as its answer"),
    ],
)
def test_unreadable_answers_file_is_one_line_naming_file_and_fix(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sims: dict[str, SimServer],
    name: str,
    content: bytes | None,
    expected: str,
) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    answers = tmp_path / name
    if content is None:
        answers.mkdir()
    else:
        answers.write_bytes(content)
    config = write_config(tmp_path, sims, ROLES)
    code, out, err = run_cli(capsys, str(spec), "-c", str(config), "--answers", str(answers))
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: answers file {answers} ") and expected in line
    assert "codec" not in line and "Errno" not in line
    assert all(server.calls == 0 for server in sims.values())


def test_config_problem_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    config = tmp_path / "rolecall.yaml"
    config.write_text("providers: {x: {type: nonsense}}\n")
    code, _, err = run_cli(capsys, str(spec), "-c", str(config))
    assert code == 2 and "Traceback" not in err and "nonsense" in err
    # No run was started, so none is announced.
    assert not any(line.startswith("run ") for line in err.splitlines())


def test_rejected_key_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer]
) -> None:
    sims["gpt"].api_key = "another-key"
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    config = write_config(tmp_path, sims, ROLES)
    code, _, err = run_cli(capsys, str(spec), "-c", str(config), "-o", str(tmp_path / "out"))
    assert code == 3 and "gpt" in err
    assert not (tmp_path / "out").exists()


def test_json_output_names_provider_per_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer]
) -> None:
    team = Team(
        plan_files("main.py", "util.py"),
        questions=[{"id": "name", "question": "Whom to greet?", "default": "world"}],
    )
    for server in sims.values():
        server.responder = team
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    config = write_config(tmp_path, sims, ROLES)
    out_dir = tmp_path / "out"
    # stdin is not a terminal here: the default answers are used without asking.
    code, out, err = run_cli(capsys, str(spec), "-c", str(config), "-o", str(out_dir), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == "ok" and data["output_dir"] == str(out_dir.resolve())
    assert f"run {data['run_id']}: {spec} -> {out_dir.resolve()}" in err
    providers = {t["task"]: t["provider"] for t in data["tasks"] if t["role"]}
    assert providers == {
        "clarify": "gem",
        "plan": "claude",
        "generate:main.py": "gpt",
        "generate:util.py": "gpt",
        "review:main.py": "claude",
        "review:util.py": "claude",
    }
    assert all(t["attempts"] == 1 and t["input_tokens"] > 0 for t in data["tasks"] if t["role"])
    run_dir = Path(data["run_dir"])
    assert "A: world" in (run_dir / "clarified-spec.md").read_text()
    assert data["review"] == str(out_dir.resolve() / "REVIEW.md")

    # Without --json: the summary table and where the result is, on stdout.
    code, out, _ = run_cli(capsys, str(spec), "-c", str(config), "-o", str(out_dir), "--force")
    assert code == 0
    for word in ("task", "stage", "role", "provider", "attempts", "latency", "tokens", "status"):
        assert word in out
    assert f"output: {out_dir.resolve()}" in out


def test_unknown_answer_id_exit_2_lists_valid_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer]
) -> None:
    team = Team(
        plan_files("a.py"), questions=[{"id": "port", "question": "Port?", "default": "8080"}]
    )
    for server in sims.values():
        server.responder = team
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    answers = tmp_path / "answers.json"
    answers.write_text('{"prot": 9000}')
    config = write_config(tmp_path, sims, ROLES)
    code, _, err = run_cli(capsys, str(spec), "-c", str(config), "--answers", str(answers))
    assert code == 2
    assert "unknown question id(s) prot; valid ids: port" in err


def test_refused_paths_are_reported_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer]
) -> None:
    team = Team(plan_files("../escape.py", "/abs/path.py", "fine.py"))
    for server in sims.values():
        server.responder = team
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    config = write_config(tmp_path, sims, ROLES)
    out_dir = tmp_path / "work" / "out"
    code, out, err = run_cli(capsys, str(spec), "-c", str(config), "-o", str(out_dir))
    assert code == 1
    assert "refused: ../escape.py ('..' leads out of the output directory)" in err
    assert "refused: /abs/path.py (absolute path)" in err
    assert not (tmp_path / "work" / "escape.py").exists()
    assert (out_dir / "fine.py").is_file()
    assert "status: partial" in out


def test_resume_unknown_run_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer]
) -> None:
    config = write_config(tmp_path, sims, ROLES)
    code, _, err = run_cli(capsys, "--resume", "20990101-000000-abcdef", "-c", str(config))
    assert code == 2 and "no saved workflow run '20990101-000000-abcdef'" in err


@pytest.mark.parametrize("state", ["[]", '{"version": 1, "run_id": "r", "spec": "a string"}'])
def test_resume_of_a_state_of_another_shape_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer], state: str
) -> None:
    config = write_config(tmp_path, sims, ROLES)
    saved = tmp_path / "runs" / "20260101-000000-abcdef" / "state.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(state)
    code, out, err = run_cli(capsys, "--resume", "20260101-000000-abcdef", "-c", str(config))
    [line] = err.splitlines()
    assert code == 2 and out == ""
    assert line.startswith("error: the saved state of run '20260101-000000-abcdef'")
    assert str(saved) in line and line.endswith("start a new run instead")
    assert saved.read_text() == state


@pytest.mark.parametrize("option", ["--resume", "--verify-only"])
@pytest.mark.parametrize("run_id", ["../elsewhere", "/tmp", "..", "x" * 5000])
def test_a_run_id_that_is_no_plain_name_is_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sims: dict[str, SimServer],
    option: str,
    run_id: str,
) -> None:
    config = write_config(tmp_path, sims, ROLES)
    # A saved run outside the runs directory must not be found through '..'.
    elsewhere = tmp_path / "elsewhere" / "state.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text('{"version": 1}')
    code, out, err = run_cli(capsys, option, run_id, "-c", str(config))
    [line] = err.splitlines()
    assert code == 2 and out == "" and line.startswith("error: ")
    too_long = len(run_id) > 255  # a plain name, of no run: no file can have it
    assert ("no saved workflow run" if too_long else "is not a run id") in line
    assert elsewhere.read_text() == '{"version": 1}'


@pytest.mark.parametrize("where", ["a file", "under a file", "in /proc"])
def test_unusable_output_dir_exits_2_before_any_provider_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sims: dict[str, SimServer], where: str
) -> None:
    if where == "in /proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC)
    config = write_config(tmp_path, sims, ROLES)
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    output = {
        "a file": afile,
        "under a file": afile / "sub",
        "in /proc": Path("/proc/rolecall-out"),
    }[where]
    code, out, err = run_cli(capsys, str(spec), "-c", str(config), "-o", str(output), "--yes")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: output directory (-o) {output}") and "pass -o" in line
    # Refused before the credential check, clarify, plan or generate spent anything.
    assert all(server.calls == 0 and server.model_calls == 0 for server in sims.values())
    assert afile.read_text() == "keep me\n"


def test_a_rejected_key_of_a_provider_no_workflow_role_reaches_stops_neither_run_nor_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spare`` serves only a custom role: the workflow never calls it, so its key (dead
    since the run began) is no reason to refuse the run or its resume with exit 3."""
    protocols = {"gem": "google", "claude": "anthropic", "gpt": "openai", "spare": "openai"}
    with started_servers(protocols, Team(plan_files("main.py"))) as servers:
        servers["spare"].api_key = "another-key"
        spec = tmp_path / "spec.md"
        spec.write_text(SPEC)
        config = write_config(tmp_path, servers, {**ROLES, "translator": {"provider": "spare"}})
        code, out, err = run_cli(
            capsys, str(spec), "-c", str(config), "-o", str(tmp_path / "out"), "--json"
        )
        assert code == 0, err
        run_id = json.loads(out)["run_id"]
        code, out, err = run_cli(capsys, "--resume", run_id, "-c", str(config), "--json")
        assert code == 0, err
        assert json.loads(out)["status"] == "ok"
        assert servers["spare"].calls == 0
