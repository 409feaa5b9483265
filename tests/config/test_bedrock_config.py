"""``type: bedrock`` entries: what ``config validate`` says of them. SigV4 credentials from
the AWS chain are the normal case, so an entry without ``api_key`` is not warned about;
a bad region or an empty profile is a one-line error naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolecall.cli import main
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.config.schema import ProviderConfig

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def validate(tmp_path: Path, providers: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "rolecall.yaml"
    path.write_text(f"providers:\n{providers}default_provider: aws\n", encoding="utf-8")
    code = main(["config", "validate", str(path), "--offline"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_sigv4_credentials_need_no_api_key_and_get_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    code, out = validate(tmp_path, f"  aws: {{type: bedrock, model: {MODEL}}}\n", capsys)
    assert code == 0
    assert "warning" not in out and "api_key" not in out
    assert "config OK: 1 provider" in out


def test_a_bedrock_api_key_from_the_environment_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-0123456789")
    entry = "  aws: {type: bedrock, model: m, api_key: '${AWS_BEARER_TOKEN_BEDROCK}'}\n"
    code, out = validate(tmp_path, entry, capsys)
    assert (code, "warning" in out) == (0, False)
    assert "bedrock-api-key-0123456789" not in out


def test_a_bad_region_or_an_empty_profile_is_named_with_its_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = (
        f"  aws: {{type: bedrock, model: {MODEL}, region: US East}}\n"
        f"  b: {{type: bedrock, model: {MODEL}, profile: ' ', model_path: /m.gguf}}\n"
    )
    code, out = validate(tmp_path, entries, capsys)
    assert code == 2
    assert (
        "providers.aws.region (line 2): 'US East' is not an AWS region; use one such as us-east-1"
        in out
    )
    assert "providers.b.profile (line 3): profile is empty; name an AWS profile" in out
    assert "'model_path' is for type local" in out
    assert "Traceback" not in out


def test_region_and_profile_are_bedrock_keys() -> None:
    entry = ProviderConfig.model_validate(
        {"type": "bedrock", "model": MODEL, "region": "us-gov-west-1", "profile": "work"}
    )
    assert isinstance(entry, BedrockConfig)
    assert (entry.region, entry.profile, entry.base_url) == ("us-gov-west-1", "work", None)
