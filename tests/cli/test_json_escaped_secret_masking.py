"""A secret is masked in its JSON-escaped form too (a quote, a backslash, a non-ASCII letter).

Output that is redacted once encoded as JSON (``config show --json`` and every other
``--json``, a vendor's error body quoting the key as a JSON string) holds ``\\"`` for
``"``, ``\\\\`` for ``\\`` and ``\\u00e9`` for ``é``: redaction looked for the key as written,
so a password with such a character was printed whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

from rolecall import _secrets
from rolecall._secrets import redact, register_secret

TOKEN = 'deploy"tok\\en-é-7f3a'


@pytest.mark.parametrize("ascii_only", [True, False])
def test_a_secret_quoted_in_json_is_masked(ascii_only: bool) -> None:
    with _secrets._scoped_registry():
        register_secret(TOKEN)
        quoted = json.dumps({"error": f"token {TOKEN} refused"}, ensure_ascii=ascii_only)
        shown = redact(quoted)
    assert "***" in shown
    assert "7f3a" not in shown


def test_config_show_json_masks_a_secret_with_characters_json_escapes(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-plain-key-0123456789")
    (project / "rolecall.yaml").write_text(
        "providers: {a: {type: openai, model: m, api_key: '${OPENAI_API_KEY}'}}\n"
        "default_provider: a\n"
        "workflow: {verify: ['deploy --token ${DEPLOY_TOKEN}']}\n"
    )
    with _secrets._scoped_registry():
        code, out, err = run_cli(capsys, "config", "show", "--json")
    assert code == 0, err
    assert json.loads(out)["workflow"]["verify"] == ["deploy --token ***"]
    assert "7f3a" not in out


def test_a_secret_with_a_slash_escaped_as_some_encoders_do_is_masked() -> None:
    key = "aws/Secret+Key/0123456789abcdef"
    with _secrets._scoped_registry():
        register_secret(key)
        shown = redact('{"message":"signed with ' + key.replace("/", "\\/") + '"}')
    assert shown == '{"message":"signed with ***"}'
