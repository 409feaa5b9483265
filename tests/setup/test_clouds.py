"""Cloud credentials in their standard places, and what ``rolecall init`` proposes for them:
a provider of the cloud's type when it can run here, else the entry commented out with
what it needs, so the written file always loads."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from rolecall.cli import main
from rolecall.config._azure_config import AzureOpenAIConfig
from rolecall.config._bedrock_config import BedrockConfig
from rolecall.config.load import load_config
from rolecall.config.provider_models import ProviderConfig
from rolecall.config.registry import ProviderType, register, unregister
from rolecall.setup.clouds import (
    AZURE_API_VERSION,
    BEDROCK_MODEL,
    PLACEHOLDER,
    find_aws,
    find_azure,
    find_clouds,
    find_google_cloud,
)
from rolecall.setup.discover import Discovery, EmbeddedModel
from rolecall.setup.proposal import propose, render_yaml

EMBEDDED = EmbeddedModel(True, "/models/smol.gguf", "SmolLM2-135M-Instruct")
SECRET = "azure-secret-0123456789"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- Azure


def test_azure_with_a_key_proposes_a_deployment_entry(tmp_path: Path) -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com",
        "AZURE_OPENAI_API_KEY": SECRET,
        "AZURE_OPENAI_DEPLOYMENT": "gpt-4o-mini",
    }
    account = find_azure(env, tmp_path)
    assert account is not None
    assert account.config() == {
        "type": "azure-openai",
        "endpoint": "https://acme.openai.azure.com",
        "deployment": "gpt-4o-mini",
        "api_version": AZURE_API_VERSION,
        "api_key": "${AZURE_OPENAI_API_KEY}",
    }
    assert account.extra_module is None  # a key needs no azure-identity
    assert SECRET not in repr(account)


def test_azure_through_entra_id_needs_azure_identity_and_may_lack_a_deployment(
    tmp_path: Path,
) -> None:
    endpoint = {"AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com"}
    assert find_azure(endpoint, tmp_path) is None  # an endpoint and no way to log in
    (tmp_path / ".azure").mkdir()  # the Azure CLI's login
    account = find_azure({**endpoint, "OPENAI_API_VERSION": "2025-01-01-preview"}, tmp_path)
    assert account is not None
    assert account.extra_module == "azure.identity"
    assert dict(account.fields)["deployment"] == PLACEHOLDER
    assert dict(account.fields)["api_version"] == "2025-01-01-preview"
    assert dict(account.fields)["auth"] == "entra" and "api_key" not in dict(account.fields)
    assert account.missing == ("deployment",)
    principal = {**endpoint, "AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"}
    assert find_azure(principal, tmp_path / "elsewhere") is not None
    assert find_azure({"AZURE_OPENAI_API_KEY": SECRET}, tmp_path) is None  # no endpoint


# ---- AWS


def test_aws_region_comes_from_the_environment_then_the_profile_then_the_default(
    tmp_path: Path,
) -> None:
    assert find_aws({}, tmp_path) is None
    write(
        tmp_path / ".aws" / "config",
        "[default]\nregion = eu-west-1\n\n[profile work]\nregion = ap-southeast-2\n",
    )
    account = find_aws({}, tmp_path)
    assert account is not None
    assert account.config() == {"type": "bedrock", "model": BEDROCK_MODEL, "region": "eu-west-1"}
    assert dict(find_aws({"AWS_PROFILE": "work"}, tmp_path).fields)["region"] == "ap-southeast-2"  # type: ignore[union-attr]
    env = {"AWS_PROFILE": "work", "AWS_REGION": "us-west-2"}
    assert dict(find_aws(env, tmp_path).fields)["region"] == "us-west-2"  # type: ignore[union-attr]


def test_aws_keys_or_a_credentials_file_alone_default_to_us_east_1(tmp_path: Path) -> None:
    keys = {"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": "s"}
    account = find_aws(keys, tmp_path)
    assert account is not None and dict(account.fields)["region"] == "us-east-1"
    assert account.unusable == ""
    assert account.found == "AWS_ACCESS_KEY_ID"
    write(tmp_path / ".aws" / "credentials", "[default]\naws_access_key_id = AKIATEST\n")
    write(tmp_path / ".aws" / "config", "not an ini file [[[")
    account = find_aws({}, tmp_path)
    assert account is not None and dict(account.fields)["region"] == "us-east-1"
    assert "AKIATEST" not in repr(account)


# ---- Google Cloud


def test_google_adc_gives_the_project_from_the_environment_or_the_file(tmp_path: Path) -> None:
    assert find_google_cloud({}, tmp_path) is None
    adc = tmp_path / ".config" / "gcloud" / "application_default_credentials.json"
    write(adc, json.dumps({"type": "authorized_user", "quota_project_id": "acme-dev"}))
    account = find_google_cloud({}, tmp_path)
    assert account is not None
    assert account.config() == {
        "type": "vertex",
        "model": "gemini-2.5-flash",
        "project": "acme-dev",
        "location": "us-central1",
    }
    env = {"GOOGLE_CLOUD_PROJECT": "acme-prod", "GOOGLE_CLOUD_LOCATION": "europe-west4"}
    fields = dict(find_google_cloud(env, tmp_path).fields)  # type: ignore[union-attr]
    assert (fields["project"], fields["location"]) == ("acme-prod", "europe-west4")


def test_a_service_account_key_names_its_project_and_no_project_is_left_to_fill(
    tmp_path: Path,
) -> None:
    key = write(tmp_path / "sa.json", json.dumps({"type": "service_account", "project_id": "p1"}))
    account = find_google_cloud({"GOOGLE_APPLICATION_CREDENTIALS": str(key)}, tmp_path)
    assert account is not None and dict(account.fields)["project"] == "p1"
    write(key, "{}")
    account = find_google_cloud({"GOOGLE_APPLICATION_CREDENTIALS": str(key)}, tmp_path)
    assert account is not None and account.missing == ("project",)


# ---- what init proposes


def every_cloud(home: Path) -> dict[str, str]:
    write(home / ".aws" / "credentials", "[default]\naws_access_key_id = AKIATEST\n")
    write(
        home / ".config" / "gcloud" / "application_default_credentials.json",
        json.dumps({"quota_project_id": "acme-dev"}),
    )
    return {"AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com", "AZURE_OPENAI_API_KEY": "k"}


def test_clouds_whose_types_are_not_here_are_offered_commented_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)  # the bedrock extra is not installed
    found = Discovery(clouds=find_clouds(every_cloud(tmp_path), tmp_path), embedded=EMBEDDED)
    proposal = propose(found)
    text = render_yaml(proposal, found)
    assert "  # bedrock:  # type bedrock needs rolecall[bedrock]" in text
    assert "  #   region: us-east-1" in text
    assert "  #   deployment: SET-ME" in text
    assert any("type bedrock needs rolecall[bedrock]" in note for note in proposal.notes)
    assert any("set deployment" in note for note in proposal.notes)
    # vertex is registered and its extra installed here: offered for real, not commented out.
    assert {proposal.role(role).provider for role in ("planner", "coder")} <= {"local", "vertex"}
    path = write(tmp_path / "rolecall.yaml", text)
    assert "bedrock" not in load_config(path, environ={}).providers


class VertexConfig(ProviderConfig):
    type: Literal["vertex"]
    model: str = Field(min_length=1)
    project: str
    location: str = "us-central1"


@pytest.fixture
def vertex_type() -> Iterator[None]:
    register(
        ProviderType(
            name="vertex",
            adapter="rolecall.providers.google:GoogleProvider",
            config_model=VertexConfig,
            default_base_url=None,
            key_env_vars=(),
            example_model="gemini-2.5-flash",
            genai_system="gcp.vertex_ai",
            param_family="google",
            capabilities={"tools": True},
            sim_dialect=None,
            extra="vertex",
            extra_module="google.auth",
        )
    )
    yield
    unregister("vertex")


@pytest.mark.usefixtures("vertex_type")
def test_a_cloud_whose_type_runs_here_gets_roles(tmp_path: Path) -> None:
    pytest.importorskip("google.auth")
    found = Discovery(clouds=find_clouds(every_cloud(tmp_path), tmp_path), embedded=EMBEDDED)
    proposal = propose(found)
    assert proposal.role("planner").provider == "vertex"
    text = render_yaml(proposal, found)
    assert "\n  vertex:  # Google Vertex AI" in text and "\n    project: acme-dev" in text
    config = load_config(write(tmp_path / "rolecall.yaml", text), environ={})
    vertex = config.providers["vertex"]
    assert isinstance(vertex, VertexConfig) and vertex.project == "acme-dev"
    assert config.chain("planner")[0] == "vertex"


def test_init_reads_the_clouds_from_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from discover_helpers import KEY_VARS, PORTS_ENV_VAR, ports_env

    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(PORTS_ENV_VAR, ports_env())
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    write(tmp_path / ".aws" / "config", "[default]\nregion = eu-west-1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "botocore", None)  # the bedrock extra is not installed
    assert main(["init", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "#   AWS Bedrock credentials: " in out
    assert "  #   region: eu-central-1" in out
    assert "needs rolecall[bedrock]" in err


def test_the_azure_entry_init_writes_loads_as_an_azure_openai_provider(tmp_path: Path) -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com",
        "AZURE_OPENAI_API_KEY": "k",
        "AZURE_OPENAI_DEPLOYMENT": "gpt-4o-mini",
    }
    found = Discovery(clouds=find_clouds(env, tmp_path), embedded=EMBEDDED)
    text = render_yaml(propose(found), found)
    path = write(tmp_path / "rolecall.yaml", text)
    azure = load_config(path, environ={"AZURE_OPENAI_API_KEY": "k"}).providers["azure"]
    assert isinstance(azure, AzureOpenAIConfig)
    assert (azure.deployment_name, azure.auth, azure.api_version) == (
        "gpt-4o-mini",
        "api-key",
        AZURE_API_VERSION,
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://bob:endpoint-pw-4711@acme.openai.azure.com/",
        "https://acme.openai.azure.com/?api-key=endpoint-key-4711",
    ],
)
def test_an_azure_endpoint_holding_credentials_is_written_as_its_variable(
    tmp_path: Path, endpoint: str
) -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": endpoint,
        "AZURE_OPENAI_API_KEY": "k",
        "AZURE_OPENAI_DEPLOYMENT": "gpt-4o-mini",
    }
    found = Discovery(clouds=find_clouds(env, tmp_path), embedded=EMBEDDED)
    text = render_yaml(propose(found), found)
    assert "4711" not in text
    assert "endpoint: ${AZURE_OPENAI_ENDPOINT}" in text
    path = write(tmp_path / "rolecall.yaml", text)
    azure = load_config(path, environ=env).providers["azure"]
    assert azure.base_url == endpoint


@pytest.mark.parametrize("endpoint", ["acme.openai.azure.com", "https://", "ftp://acme/"])
def test_an_azure_endpoint_that_is_no_url_is_offered_to_fix_not_written_broken(
    tmp_path: Path, endpoint: str
) -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": endpoint,
        "AZURE_OPENAI_API_KEY": "k",
        "AZURE_OPENAI_DEPLOYMENT": "gpt-4o-mini",
    }
    found = Discovery(clouds=find_clouds(env, tmp_path), embedded=EMBEDDED)
    proposal = propose(found)
    path = write(tmp_path / "rolecall.yaml", render_yaml(proposal, found))
    config = load_config(path, environ=env)  # config validate accepts what init wrote
    assert "azure" not in config.providers
    assert any(
        "AZURE_OPENAI_ENDPOINT (not an https:// URL)" in note and "set endpoint" in note
        for note in proposal.notes
    )


def _offered_with(env: dict[str, str], home: Path, provider: str) -> list[str]:
    """The notes of what init proposes for ``env``; the written file loads without ``provider``."""
    found = Discovery(clouds=find_clouds(env, home), embedded=EMBEDDED)
    proposal = propose(found)
    config = load_config(write(home / "rolecall.yaml", render_yaml(proposal, found)), environ=env)
    assert provider not in config.providers
    assert all(a.provider != provider for a in proposal.roles)
    return [note for note in proposal.notes if f"uncomment providers.{provider}" in note]


def test_an_aws_key_id_without_its_secret_is_offered_to_fix_not_given_roles(
    tmp_path: Path,
) -> None:
    notes = _offered_with({"AWS_ACCESS_KEY_ID": "AKIATEST"}, tmp_path, "bedrock")
    assert len(notes) == 1 and "set AWS_SECRET_ACCESS_KEY too" in notes[0]
    assert "AKIATEST" not in notes[0]


def test_an_aws_profile_no_file_defines_is_offered_to_fix_not_given_roles(
    tmp_path: Path,
) -> None:
    write(tmp_path / ".aws" / "credentials", "[default]\naws_access_key_id = AKIATEST\n")
    write(tmp_path / ".aws" / "config", "[profile work]\nregion = eu-west-1\n")
    for profile in ("default", "work"):
        assert find_aws({"AWS_PROFILE": profile}, tmp_path).unusable == ""  # type: ignore[union-attr]
    notes = _offered_with({"AWS_PROFILE": "nosuch"}, tmp_path, "bedrock")
    assert len(notes) == 1 and "AWS_PROFILE=nosuch names no profile" in notes[0]


def test_google_credentials_naming_no_file_are_offered_to_fix_not_skipped(
    tmp_path: Path,
) -> None:
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "gone.json")}
    notes = _offered_with(env, tmp_path, "vertex")
    assert len(notes) == 1
    assert f"GOOGLE_APPLICATION_CREDENTIALS names {tmp_path / 'gone.json'}" in notes[0]


def test_the_bedrock_entry_init_writes_runs_here_and_loads_as_a_bedrock_provider(
    tmp_path: Path,
) -> None:
    pytest.importorskip("botocore")
    write(tmp_path / ".aws" / "credentials", "[default]\naws_access_key_id = AKIATEST\n")
    found = Discovery(clouds=find_clouds({"AWS_REGION": "eu-west-3"}, tmp_path), embedded=EMBEDDED)
    proposal = propose(found)
    assert proposal.role("planner").provider == "bedrock"
    text = render_yaml(proposal, found)
    assert "\n  bedrock:  # AWS Bedrock" in text and "needs rolecall[bedrock]" not in text
    config = load_config(write(tmp_path / "rolecall.yaml", text), environ={})
    bedrock = config.providers["bedrock"]
    assert isinstance(bedrock, BedrockConfig)
    assert (bedrock.model, bedrock.region, bedrock.api_key) == (BEDROCK_MODEL, "eu-west-3", None)


def test_a_bedrock_api_key_alone_is_found_and_never_copied(tmp_path: Path) -> None:
    token = "bedrock-api-key-0123456789"
    account = find_aws({"AWS_BEARER_TOKEN_BEDROCK": token}, tmp_path)
    assert account is not None and account.found == "AWS_BEARER_TOKEN_BEDROCK"
    # The adapter reads the variable itself, so the entry needs no api_key.
    assert account.config() == {"type": "bedrock", "model": BEDROCK_MODEL, "region": "us-east-1"}
    assert token not in repr(account)
