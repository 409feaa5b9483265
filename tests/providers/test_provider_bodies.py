"""Request mapping per vendor: roles, system prompt, params, structured output, streaming."""

from __future__ import annotations

from typing import Any

import pytest

from rolecall.config.schema import RolecallConfig
from rolecall.errors import ErrorKind, ProviderError
from rolecall.providers.anthropic import anthropic_body
from rolecall.providers.google import gemini_body
from rolecall.providers.openai import OpenAIProvider, openai_body
from rolecall.types import ChatRequest, ImagePart, Message, TextPart

MESSAGES = (
    Message("system", "Be terse."),
    Message("user", "Hi"),
    Message("assistant", "Hello."),
    Message("system", "Answer in French."),
    Message("user", "Plan it"),
)
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Plan steps!",
    "type": "object",
    "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
    "required": ["steps"],
    "additionalProperties": False,
}


def _request(
    params: dict[str, Any] | None = None, schema: dict[str, Any] | None = None
) -> ChatRequest:
    return ChatRequest(messages=MESSAGES, params=params or {}, response_schema=schema)


def test_openai_body_keeps_messages_and_passes_unknown_params() -> None:
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 256,
        "stop": ["END"],
        "seed": 7,
        "model": "ignored",
        "presence_penalty": None,
    }
    body = openai_body(
        "gpt-4.1", _request(params), max_tokens_field="max_completion_tokens", stream=False
    )
    assert body["model"] == "gpt-4.1"
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert [m["role"] for m in body["messages"]] == [
        "system",
        "user",
        "assistant",
        "system",
        "user",
    ]
    assert body["max_completion_tokens"] == 256 and "max_tokens" not in body
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9
    assert body["stop"] == ["END"] and body["seed"] == 7
    assert "presence_penalty" not in body and "stream" not in body


def test_openai_compatible_sends_max_tokens_and_stream_usage() -> None:
    body = openai_body(
        "llama3", _request({"max_tokens": 64}), max_tokens_field="max_tokens", stream=True
    )
    assert body["max_tokens"] == 64 and "max_completion_tokens" not in body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_openai_structured_output() -> None:
    body = openai_body(
        "gpt-4.1", _request(schema=SCHEMA), max_tokens_field="max_tokens", stream=False
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Plan_steps_", "schema": SCHEMA, "strict": False},
    }
    untitled = {k: v for k, v in SCHEMA.items() if k != "title"}
    body = openai_body("m", _request(schema=untitled), max_tokens_field="max_tokens", stream=False)
    assert body["response_format"]["json_schema"]["name"] == "response"


def test_anthropic_body_moves_system_and_defaults_max_tokens() -> None:
    body = anthropic_body("claude-sonnet-4-5", _request(), stream=False)
    assert body["system"] == "Be terse.\n\nAnswer in French."
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Plan it"},
    ]
    assert body["max_tokens"] == 4096
    assert "stream" not in body and "tools" not in body


def test_anthropic_params_stop_and_temperature_range() -> None:
    params = {"temperature": 1, "top_p": 0.8, "top_k": 20, "max_tokens": 100, "stop": "END"}
    body = anthropic_body("m", _request(params), stream=True)
    assert body["temperature"] == 1  # Anthropic accepts 0..1
    with pytest.raises(ProviderError) as caught:
        anthropic_body("m", _request({**params, "temperature": 1.4}), stream=True)
    assert caught.value.kind is ErrorKind.UNSUPPORTED and "above 1" in caught.value.message
    assert body["top_p"] == 0.8 and body["top_k"] == 20
    assert body["max_tokens"] == 100
    assert body["stop_sequences"] == ["END"]
    assert body["stream"] is True


def test_anthropic_structured_output_is_one_forced_tool() -> None:
    body = anthropic_body("m", _request(schema=SCHEMA), stream=False)
    assert body["tools"] == [
        {
            "name": "respond",
            "description": "Give the answer as this tool's input.",
            "input_schema": SCHEMA,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "respond"}


def test_gemini_body_roles_system_and_generation_config() -> None:
    params = {
        "temperature": 0.3,
        "top_p": 0.95,
        "max_tokens": 512,
        "stop": ["##"],
        "frequency_penalty": 1,
    }
    body = gemini_body(_request(params))
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse.\n\nAnswer in French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello."}]},
        {"role": "user", "parts": [{"text": "Plan it"}]},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.95,
        "maxOutputTokens": 512,
        "stopSequences": ["##"],
        "frequencyPenalty": 1,
    }


def test_gemini_structured_output_uses_json_schema() -> None:
    body = gemini_body(ChatRequest(messages=(Message("user", "x"),), response_schema=SCHEMA))
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }
    assert "systemInstruction" not in body


def test_gemini_body_without_params_has_no_generation_config() -> None:
    assert gemini_body(ChatRequest(messages=(Message("user", "x"),))) == {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}]
    }


def _image(media_type: str) -> ChatRequest:
    image = ImagePart(f"data:{media_type};base64,AAAA")
    return ChatRequest((Message("user", "what is it?", parts=(TextPart("what?"), image)),), {})


def test_gemini_body_refuses_what_gemini_refuses_naming_the_limit() -> None:
    five = gemini_body(_request({"stop": list("abcde")}))
    assert five["generationConfig"]["stopSequences"] == list("abcde")
    for request, said in [
        (_request({"stop": list("abcdef")}), "stop has 6 sequences and it takes at most 5"),
        (_image("image/gif"), "'image/gif'"),
    ]:
        with pytest.raises(ProviderError) as caught:
            gemini_body(request, provider="gemini")
        assert caught.value.kind is ErrorKind.UNSUPPORTED and said in caught.value.message


def test_openai_adapter_refuses_what_openai_refuses_and_compatible_servers_get_it() -> None:
    def provider(kind: str) -> OpenAIProvider:
        entry = {"type": kind, "model": "m", "base_url": "http://127.0.0.1:9/v1"}
        return OpenAIProvider(
            "p", RolecallConfig.model_validate({"providers": {"p": entry}}).providers["p"]
        )

    for request, said in [
        (_request({"stop": list("abcde")}), "takes at most 4"),
        (_image("image/bmp"), "'image/bmp'"),
    ]:
        with pytest.raises(ProviderError) as caught:
            provider("openai").body(request, stream=False)
        assert caught.value.kind is ErrorKind.UNSUPPORTED and said in caught.value.message
        assert provider("openai-compatible").body(request, stream=False)  # vLLM takes more
    gif = provider("openai").body(_image("image/gif"), stream=False)
    assert gif["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/gif")
