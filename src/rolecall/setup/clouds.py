"""Cloud credentials in their standard places, for ``rolecall init``: Azure, AWS, Google Cloud.

Pure functions over an environment mapping and a home directory, so tests run on a
temporary home. Nothing is sent anywhere and no secret is kept: only which variable or
file holds the credential, and the non-secret settings (endpoint, region, project) the
provider entry needs.

Each account found becomes a provider entry of the cloud's type (``azure-openai``,
``bedrock``, ``vertex``) as plain config values; whether that type can run here (is it
registered, is its extra installed) is :mod:`rolecall.setup.proposal`'s question.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rolecall._secrets import mask_url
from rolecall.config._azure_config import DEFAULT_API_VERSION

__all__ = [
    "AZURE_API_VERSION",
    "BEDROCK_MODEL",
    "CLOUD_ENV_VARS",
    "VERTEX_MODEL",
    "CloudAccount",
    "find_aws",
    "find_azure",
    "find_clouds",
    "find_google_cloud",
]

AZURE_API_VERSION = DEFAULT_API_VERSION  # the azure-openai type's default
# A global inference profile: Claude 4.5 models are not served on demand by region id,
# and a global profile answers from every commercial region.
BEDROCK_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX_MODEL = "gemini-2.5-flash"
AWS_DEFAULT_REGION = "us-east-1"
VERTEX_DEFAULT_LOCATION = "us-central1"
# A value the user must fill in: the entry is offered commented out until then.
PLACEHOLDER = "SET-ME"

# Every variable read here (tests clear them for a clean machine).
CLOUD_ENV_VARS = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_DEPLOYMENT",
    "AZURE_OPENAI_API_VERSION",
    "OPENAI_API_VERSION",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CONFIG_DIR",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "CLOUDSDK_CORE_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "CLOUDSDK_CONFIG",
)


@dataclass(frozen=True, slots=True)
class CloudAccount:
    """Credentials for one cloud, and the provider entry they suggest."""

    cloud: str  # "Azure OpenAI", "AWS Bedrock", "Google Vertex AI"
    provider_id: str  # azure, bedrock, vertex
    type: str  # the provider type: azure-openai, bedrock, vertex
    extra: str  # the pip extra of the type: azure, bedrock, vertex
    extra_module: str | None  # what the extra installs; None: not needed for this login
    model: str  # the model (Azure: the deployment) the entry calls
    fields: tuple[tuple[str, str], ...]  # the entry's keys after type, in order
    found: str  # where the credential is: variables or files, never values
    missing: tuple[str, ...] = ()  # keys left as PLACEHOLDER, for the user to fill in
    unusable: str = ""  # what in the environment the cloud's SDK would refuse, and the fix

    def config(self) -> dict[str, str]:
        """The provider entry as config values."""
        return {"type": self.type, **dict(self.fields)}


def _set(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def find_azure(env: Mapping[str, str], home: Path) -> CloudAccount | None:
    """An Azure OpenAI resource: its endpoint, and a key or a Microsoft Entra ID login
    (a service principal's variables, or the Azure CLI's ~/.azure)."""
    endpoint = _set(env, "AZURE_OPENAI_ENDPOINT")
    if endpoint is None:
        return None
    key = _set(env, "AZURE_OPENAI_API_KEY")
    principal = [name for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID") if _set(env, name)]
    cli_dir = Path(_set(env, "AZURE_CONFIG_DIR") or home / ".azure")
    if key is None and not principal and not cli_dir.is_dir():
        return None
    deployment = _set(env, "AZURE_OPENAI_DEPLOYMENT")
    version = _set(env, "AZURE_OPENAI_API_VERSION") or _set(env, "OPENAI_API_VERSION")
    missing = [] if deployment else ["deployment"]
    where = "AZURE_OPENAI_ENDPOINT"
    if not _http_url(endpoint):  # config validate would reject the file: offer it to fix
        endpoint = PLACEHOLDER
        missing.insert(0, "endpoint")
        where += " (not an https:// URL)"
    elif mask_url(endpoint) != endpoint:
        # An endpoint holding credentials (user:password@, ?api-key=) stays in the environment.
        endpoint = "${AZURE_OPENAI_ENDPOINT}"
    fields = [
        ("endpoint", endpoint),
        ("deployment", deployment or PLACEHOLDER),
        ("api_version", version or AZURE_API_VERSION),
    ]
    if key is not None:
        fields.append(("api_key", "${AZURE_OPENAI_API_KEY}"))
        login = "AZURE_OPENAI_API_KEY"
    else:
        fields.append(("auth", "entra"))  # azure-identity signs in as the login found
        login = ", ".join(principal) if principal else f"Azure CLI login ({cli_dir})"
    return CloudAccount(
        cloud="Azure OpenAI",
        provider_id="azure",
        type="azure-openai",
        extra="azure",
        extra_module=None if key is not None else "azure.identity",
        model=deployment or PLACEHOLDER,
        fields=tuple(fields),
        found=f"{where}, {login}",
        missing=tuple(missing),
    )


def _http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _aws_files(env: Mapping[str, str], home: Path) -> tuple[Path, Path]:
    config = _set(env, "AWS_CONFIG_FILE")
    credentials = _set(env, "AWS_SHARED_CREDENTIALS_FILE")
    return (
        Path(config).expanduser() if config else home / ".aws" / "config",
        Path(credentials).expanduser() if credentials else home / ".aws" / "credentials",
    )


def _read_ini(path: Path) -> configparser.ConfigParser:
    """An AWS file's sections; none when it is missing or unreadable."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return configparser.ConfigParser(interpolation=None)
    return parser


def _profile_region(config_file: Path, profile: str) -> str | None:
    """The ``region`` of ``profile`` in the AWS config file, if it says one."""
    parser = _read_ini(config_file)
    section = "default" if profile == "default" else f"profile {profile}"
    region = parser.get(section, "region", fallback="").strip()
    return region or None


def find_aws(env: Mapping[str, str], home: Path) -> CloudAccount | None:
    """AWS credentials for Bedrock: a Bedrock API key, the key variables, a profile, or the
    shared files. The adapter reads ``AWS_BEARER_TOKEN_BEDROCK`` itself (and prefers it, as
    botocore does), so the entry names no ``api_key``."""
    config_file, credentials_file = _aws_files(env, home)
    profile = _set(env, "AWS_PROFILE")
    if _set(env, "AWS_BEARER_TOKEN_BEDROCK"):
        found = "AWS_BEARER_TOKEN_BEDROCK"
    elif _set(env, "AWS_ACCESS_KEY_ID"):
        found = "AWS_ACCESS_KEY_ID"
    elif profile is not None:
        found = f"AWS_PROFILE={profile}"
    elif credentials_file.is_file():
        found = str(credentials_file)
    elif config_file.is_file():
        found = str(config_file)
    else:
        return None
    region = (
        _set(env, "AWS_REGION")
        or _set(env, "AWS_DEFAULT_REGION")
        or (_profile_region(config_file, profile or "default") if config_file.is_file() else None)
        or AWS_DEFAULT_REGION
    )
    return CloudAccount(
        cloud="AWS Bedrock",
        provider_id="bedrock",
        type="bedrock",
        extra="bedrock",
        extra_module="botocore",
        model=BEDROCK_MODEL,
        fields=(("model", BEDROCK_MODEL), ("region", region)),
        found=found,
        unusable=_aws_unusable(env, profile, config_file, credentials_file),
    )


def _aws_unusable(
    env: Mapping[str, str], profile: str | None, config_file: Path, credentials_file: Path
) -> str:
    """What botocore would refuse (a partial key pair, a profile no file names), or ""."""
    if _set(env, "AWS_BEARER_TOKEN_BEDROCK"):
        return ""
    if _set(env, "AWS_ACCESS_KEY_ID") and not _set(env, "AWS_SECRET_ACCESS_KEY"):
        return "set AWS_SECRET_ACCESS_KEY too (AWS_ACCESS_KEY_ID is set without it)"
    if profile is None or _set(env, "AWS_ACCESS_KEY_ID"):
        return ""
    named = {
        *(s.removeprefix("profile ").strip() for s in _read_ini(config_file).sections()),
        *_read_ini(credentials_file).sections(),
    }
    if profile in named:
        return ""
    return (
        f"AWS_PROFILE={profile} names no profile in {config_file} or {credentials_file}: "
        "set AWS_PROFILE to a profile they define"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def find_google_cloud(env: Mapping[str, str], home: Path) -> CloudAccount | None:
    """Application Default Credentials for Vertex AI: the file GOOGLE_APPLICATION_CREDENTIALS
    names, or the one ``gcloud auth application-default login`` writes."""
    named = _set(env, "GOOGLE_APPLICATION_CREDENTIALS")
    gcloud_dir = Path(_set(env, "CLOUDSDK_CONFIG") or home / ".config" / "gcloud")
    path = (
        Path(named).expanduser() if named else gcloud_dir / "application_default_credentials.json"
    )
    if not path.is_file() and not named:
        return None
    adc = _read_json(path)
    # A service account's key names its project; a user login may name a quota project.
    from_file = adc.get("project_id") or adc.get("quota_project_id")
    project = (
        _set(env, "GOOGLE_CLOUD_PROJECT")
        or _set(env, "CLOUDSDK_CORE_PROJECT")
        or (str(from_file) if isinstance(from_file, str) and from_file.strip() else None)
    )
    location = _set(env, "GOOGLE_CLOUD_LOCATION") or VERTEX_DEFAULT_LOCATION
    return CloudAccount(
        cloud="Google Vertex AI",
        provider_id="vertex",
        type="vertex",
        extra="vertex",
        extra_module="google.auth",
        model=VERTEX_MODEL,
        fields=(
            ("model", VERTEX_MODEL),
            ("project", project or PLACEHOLDER),
            ("location", location),
        ),
        found="GOOGLE_APPLICATION_CREDENTIALS" if named else str(path),
        missing=() if project else ("project",),
        unusable=""
        if path.is_file()
        else (
            f"GOOGLE_APPLICATION_CREDENTIALS names {path}, which is not a file: "
            "point it at your key file, or unset it to use gcloud's login"
        ),
    )


def find_clouds(env: Mapping[str, str], home: Path) -> tuple[CloudAccount, ...]:
    """Every cloud whose credentials are in their standard places."""
    found = (find_azure(env, home), find_aws(env, home), find_google_cloud(env, home))
    return tuple(account for account in found if account is not None)
