"""Amazon Bedrock's Converse API: ``POST {endpoint}/model/{modelId}/converse`` and ``-stream``.

The body is built in ``_bedrock_body``, streams (binary AWS event-stream frames) are read
in ``_bedrock_stream``, failures classified in ``_bedrock_errors`` and requests signed in
``_bedrock_auth``: SigV4 with the AWS credential chain (``profile`` optional), or a
Bedrock API key (``api_key`` or ``AWS_BEARER_TOKEN_BEDROCK``) as a bearer token. The
model id (a model, an inference profile or an ARN) is percent-encoded into the path,
as the AWS SDKs send it and sign it. ``endpoint`` replaces
``https://bedrock-runtime.{region}.amazonaws.com`` (a VPC endpoint, or the sim).

The credential check spends no tokens: the control plane's ``GetFoundationModel`` (or
``GetInferenceProfile`` for a profile id) on ``https://bedrock.{region}.amazonaws.com``
(or ``endpoint``), signed like a call. It proves the credentials and that the model
exists; a role allowed to invoke models but not to read them (AccessDenied there) passes
with a warning, since the call itself may still be allowed.

Finish reasons use OpenAI's words (``stop``, ``length``, ``tool_calls``); a filtered or
guardrail-stopped answer is a ``content_filter`` error, never an empty success.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from rolecall.config._bedrock_config import REGION_PATTERN, BedrockConfig
from rolecall.errors import ConfigError, ConfigIssue, ErrorKind, ProviderError
from rolecall.providers._bedrock_auth import BearerAuth, SigV4Signer, bearer_token
from rolecall.providers._bedrock_body import PROTOCOL, converse_body, response_schema
from rolecall.providers._bedrock_errors import classify_bedrock_error, stream_exception_error
from rolecall.providers._bedrock_stream import (
    FILTER_STOP_REASONS,
    Frame,
    FrameError,
    StreamState,
    botocore_eventstream,
    finish_reason,
    iter_frames,
    usage_of,
)
from rolecall.providers._errors import is_error_report
from rolecall.providers._http import HTTPProvider, json_body
from rolecall.providers.base import optional_text
from rolecall.types import ChatRequest, Chunk, Completion, ReasoningBlock, ToolCall

__all__ = ["BedrockProvider", "control_path", "resolve_region", "runtime_url"]

log = logging.getLogger("rolecall.providers")

_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.")
_MALFORMED_STOPS = frozenset({"malformed_model_output", "malformed_tool_use"})


def _config_issue(provider_id: str, field: str, problem: str, fix: str) -> ConfigError:
    return ConfigError([ConfigIssue(f"providers.{provider_id}.{field}", problem, fix)])


def resolve_region(provider_id: str, region: str | None, profile: str | None = None) -> str:
    """The config's ``region``, else ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the
    profile's region; a name that is not an AWS region is refused (it lands in a host)."""
    found = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        found = _profile_region(profile)
    if not found:
        raise _config_issue(
            provider_id,
            "region",
            "is required for type bedrock",
            "set it (e.g. us-east-1), or AWS_REGION, or a region in your AWS profile",
        )
    if not REGION_PATTERN.fullmatch(found):
        raise _config_issue(
            provider_id, "region", f"'{found[:40]}' is not an AWS region", "use e.g. us-east-1"
        )
    return found


def _profile_region(profile: str | None) -> str | None:
    try:
        from botocore.exceptions import BotoCoreError
        from botocore.session import Session
    except ModuleNotFoundError:
        return None
    try:
        value = Session(profile=profile).get_config_variable("region")
    except BotoCoreError:
        return None
    return value if isinstance(value, str) and value else None


def runtime_url(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


def control_path(model: str) -> str:
    """The control-plane path that proves ``model`` exists without invoking it."""
    encoded = quote(model, safe="")
    if ":inference-profile/" in model or ":application-inference-profile/" in model:
        return f"/inference-profiles/{encoded}"
    if model.startswith("arn:"):
        return "/foundation-models"  # provisioned, custom or imported: listing proves the keys
    if model.startswith(_PROFILE_PREFIXES):
        return f"/inference-profiles/{encoded}"
    return f"/foundation-models/{encoded}"


def _tool_call(block: Mapping[str, Any]) -> ToolCall:
    return ToolCall(
        optional_text(block.get("toolUseId")) or "",
        optional_text(block.get("name")) or "",
        json.dumps(block.get("input") if block.get("input") is not None else {}),
    )


def _reasoning_text(block: object) -> str:
    """The text of a ``reasoningContent`` block; "" for any other shape."""
    reasoning = block.get("reasoningText") if isinstance(block, dict) else None
    text = reasoning.get("text") if isinstance(reasoning, dict) else None
    return text if isinstance(text, str) else ""


def _reasoning_blocks(blocks: list[dict[str, Any]]) -> tuple[ReasoningBlock, ...]:
    """The ``reasoningContent`` blocks as they must be sent back: text and signature, or
    redacted bytes (base64 text in JSON)."""
    out: list[ReasoningBlock] = []
    for block in blocks:
        reasoning = block.get("reasoningContent")
        if not isinstance(reasoning, dict):
            continue
        sealed = reasoning.get("redactedContent")
        if isinstance(sealed, str) and sealed:
            out.append(ReasoningBlock(PROTOCOL, redacted=sealed))
            continue
        signed = reasoning.get("reasoningText")
        if isinstance(signed, dict) and isinstance(signed.get("text"), str):
            signature = optional_text(signed.get("signature")) or ""
            out.append(ReasoningBlock(PROTOCOL, signed["text"], signature=signature))
    return tuple(out)


class BedrockProvider(HTTPProvider):
    """``type: bedrock``."""

    classify = staticmethod(classify_bedrock_error)
    per_request_headers = True

    def __init__(self, provider_id: str, config: BedrockConfig) -> None:
        botocore_eventstream()  # the bedrock extra, checked before anything is configured
        profile = config.profile
        self.region = resolve_region(provider_id, config.region, profile)
        super().__init__(provider_id, config, runtime_url(self.region))
        model = quote(self.model, safe="")
        self._converse_url = f"{self.base_url}/model/{model}/converse"
        self._stream_url = f"{self.base_url}/model/{model}/converse-stream"
        control = config.base_url or f"https://bedrock.{self.region}.amazonaws.com"
        self._control_url = control.rstrip("/") + control_path(self.model)
        token = bearer_token(config.api_key.get() if config.api_key else None)
        self._auth = BearerAuth(token) if token else SigV4Signer(self.region, profile, provider_id)

    def auth_headers(self) -> dict[str, str]:
        return {}  # every credential is per request (request_headers)

    async def request_headers(self, method: str, url: str, body: bytes | None) -> Mapping[str, str]:
        return await self._auth.headers(method, url, body)

    async def renew_credentials(self, sent: Mapping[str, str]) -> bool:
        return await self._auth.renewed(sent)

    def _filtered(self, stop: str) -> ProviderError:
        return self.error(
            f"answer withheld by the content filter (stopReason {stop})", ErrorKind.CONTENT_FILTER
        )

    def _malformed(self, stop: str) -> ProviderError:
        return self.error(
            f"the model's output was malformed (stopReason {stop})", ErrorKind.BAD_RESPONSE
        )

    async def complete(self, request: ChatRequest) -> Completion:
        body = converse_body(self.model, request, provider=self.id)
        data = await self.request_json("POST", self._converse_url, body)
        output = data.get("output") if isinstance(data, dict) else None
        message = output.get("message") if isinstance(output, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        stop = data.get("stopReason") if isinstance(data, dict) else None
        stop = stop if isinstance(stop, str) else None  # another shape says nothing
        if stop in FILTER_STOP_REASONS:
            raise self._filtered(str(stop))
        if not isinstance(content, list):
            raise self.error("answer has no output message", ErrorKind.BAD_RESPONSE)
        if stop in _MALFORMED_STOPS:
            raise self._malformed(str(stop))
        blocks = [b for b in content if isinstance(b, dict)]
        text = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))
        reasoning = "".join(_reasoning_text(b.get("reasoningContent")) for b in blocks)
        calls = [_tool_call(b["toolUse"]) for b in blocks if isinstance(b.get("toolUse"), dict)]
        if not text and not calls:
            raise self.empty_answer()
        if response_schema(request) is not None and not calls:
            self.check_json_text(text)
        usage = data.get("usage")
        return Completion(
            text=text,
            model=self.model,
            usage=usage_of(usage if isinstance(usage, dict) else {}),
            finish_reason=finish_reason(stop) or ("tool_calls" if calls else None),
            tool_calls=tuple(calls),
            reasoning=reasoning or None,
            reasoning_blocks=_reasoning_blocks(blocks),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        state = StreamState(structured=response_schema(request) is not None)
        body = converse_body(self.model, request, provider=self.id)
        async with self._open_frames(self._stream_url, body) as frames:
            async for frame in frames:
                if frame.message_type != "event":
                    raise stream_exception_error(frame.name, frame.payload, self.id)
                data = self._payload(frame)
                stop = data.get("stopReason") if frame.name == "messageStop" else None
                if isinstance(stop, str) and stop in FILTER_STOP_REASONS:
                    raise self._filtered(stop)
                chunk = state.take(frame.name, data)
                if chunk is not None:
                    yield chunk
        if not state.done:
            raise self.cut_short(state.received)
        if state.stop_reason in _MALFORMED_STOPS:
            raise self._malformed(str(state.stop_reason))
        if not state.received and not state.calls:
            raise self.empty_answer()
        if state.structured and not state.calls:
            self.check_json_text("".join(state.json_parts))
        yield Chunk(
            usage=state.usage(), finish_reason=finish_reason(state.stop_reason), model=self.model
        )

    def _payload(self, frame: Frame) -> dict[str, Any]:
        try:
            data = json.loads(frame.payload)
        except (ValueError, RecursionError):
            head = frame.payload[:120].decode("utf-8", "replace")
            raise self.error(
                f"stream event {frame.name} is not JSON: {head}", ErrorKind.BAD_RESPONSE
            ) from None
        if not isinstance(data, dict):
            raise self.error(f"stream event {frame.name} is not an object", ErrorKind.BAD_RESPONSE)
        return data

    @asynccontextmanager
    async def _open_frames(self, url: str, body: Any) -> AsyncIterator[AsyncIterator[Frame]]:
        """POST ``body`` and yield its event-stream frames; HTTP, transport and framing
        errors are classified."""
        async with self.post_stream(url, json_body(body)) as response:
            content_type = response.headers.get("content-type", "")
            if "eventstream" not in content_type:
                raw = await response.read()
                if is_error_report(raw):
                    raise self.http_error(None, raw, response.headers)
                raise self.error(
                    f"expected an event stream, got {content_type or 'no content type'}",
                    ErrorKind.BAD_RESPONSE,
                )
            yield self._checked(iter_frames(response.chunks()))

    async def _checked(self, frames: AsyncIterator[Frame]) -> AsyncIterator[Frame]:
        try:
            async for frame in frames:
                yield frame
        except FrameError as exc:
            raise self.error(str(exc), ErrorKind.BAD_RESPONSE) from None

    async def check_credentials(self) -> None:
        """The control plane's model lookup (free); see the module docstring."""
        try:
            await self.request_json("GET", self._control_url)
        except ProviderError as exc:
            if exc.kind is ErrorKind.PERMISSION:
                log.warning(
                    "provider %s: the AWS credentials are valid but may not read model %s "
                    "(%s); calls may still be allowed",
                    self.id,
                    self.model,
                    exc.message,
                )
                return
            if exc.kind is ErrorKind.NOT_FOUND and "UnknownOperation" in exc.message:
                log.warning(
                    "provider %s: %s serves no Bedrock control plane; the credentials were not "
                    "checked before the first call",
                    self.id,
                    self.base_url,
                )
                return
            raise
