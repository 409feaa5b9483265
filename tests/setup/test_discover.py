"""Detection for ``rolecall init``: keys, loopback servers (real tiny servers), embedded model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from discover_helpers import ModelServer, ollama, openai_models, silent_socket, trickling_socket
from rolecall.setup.discover import (
    DEFAULT_PORTS,
    PORTS_ENV_VAR,
    discover,
    find_embedded,
    find_keys,
    find_servers,
    parse_ports,
)

OFF = {name: 0 for name in DEFAULT_PORTS}


def test_keys_are_found_by_variable_and_never_kept() -> None:
    env = {
        "OPENAI_API_KEY": "sk-test-value",
        "GOOGLE_API_KEY": "g-test-value",
        "GROQ_API_KEY": "  ",  # blank: not a key
        "DEEPSEEK_API_KEY": "d-test-value",
    }
    found = {k.vendor: k for k in find_keys(env)}
    assert set(found) == {"openai", "google", "deepseek"}
    assert found["google"].env_var == "GOOGLE_API_KEY"
    assert found["deepseek"].type == "openai-compatible"
    assert found["deepseek"].base_url == "https://api.deepseek.com/v1"
    assert "test-value" not in repr(found)


async def test_keys_a_vendor_would_reject_as_written_get_a_note_naming_the_variable(
    tmp_path: Path,
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-secret-value-1\n",
        "ANTHROPIC_API_KEY": "export sk-secret-value-2",
        "GROQ_API_KEY": '"gsk-secret-value-3"',
        "MISTRAL_API_KEY": "  m-secret-value-4",
        "DEEPSEEK_API_KEY": "d-secret-value-5",  # fine
    }
    found = await discover(environ=env, ports=OFF, home=tmp_path)
    assert {k.env_var for k in found.keys} == set(env)  # still proposed, by variable
    notes = "\n".join(found.notes)
    assert "secret-value" not in notes
    assert "OPENAI_API_KEY has a line break before or after it" in notes
    assert "MISTRAL_API_KEY has spaces or tabs before or after it" in notes
    assert "ANTHROPIC_API_KEY starts with 'export '" in notes
    assert "GROQ_API_KEY is wrapped in quotes" in notes
    assert "DEEPSEEK_API_KEY" not in notes


def test_gemini_key_wins_over_google_key() -> None:
    (google,) = find_keys({"GEMINI_API_KEY": "a", "GOOGLE_API_KEY": "b"})
    assert google.env_var == "GEMINI_API_KEY"


def test_ports_override_and_reject_nonsense() -> None:
    ports = parse_ports("ollama=4000, vllm=off")
    assert ports["ollama"] == 4000 and ports["vllm"] == 0 and ports["lmstudio"] == 1234
    for bad in ("ollama", "mystery=1", "ollama=99999", "ollama=abc"):
        with pytest.raises(ValueError, match=PORTS_ENV_VAR):
            parse_ports(bad)


async def test_only_servers_that_list_models_count_and_silent_ones_time_out() -> None:
    with (
        ollama("llama3.2:latest", "nomic-embed-text") as fake_ollama,
        openai_models("qwen2.5-coder") as fake_llamacpp,
        ModelServer("/v1/models", {"error": "nope"}, status=500) as broken,
        silent_socket() as hung_port,
    ):
        started = time.perf_counter()
        servers, _ = await find_servers(
            {
                "ollama": fake_ollama.port,
                "llamacpp": fake_llamacpp.port,
                "vllm": broken.port,
                "lmstudio": hung_port,
            },
            probe_timeout=0.5,
        )
        elapsed = time.perf_counter() - started
    by_name = {s.server: s for s in servers}
    assert set(by_name) == {"ollama", "llamacpp"}
    assert by_name["ollama"].models == ("llama3.2:latest",)  # embedding model left out
    assert by_name["llamacpp"].base_url == f"http://127.0.0.1:{fake_llamacpp.port}/v1"
    assert elapsed < 3, "a silent server must cost one short timeout, not hang discovery"
    # Only the model list was asked for: no prompt sent.
    assert fake_ollama.requests == ["GET /api/tags"]
    assert fake_llamacpp.requests == ["GET /v1/models"]


async def test_ports_that_answer_but_are_skipped_are_named_in_notes() -> None:
    with (
        ModelServer("/api/tags", {"models": "not a list"}) as odd_ollama,
        ModelServer("/elsewhere", {}) as web_server,  # 404 for the model list
        silent_socket() as hung_port,
        trickling_socket() as trickling_port,
    ):
        found = await discover(
            environ={},
            ports={
                "ollama": odd_ollama.port,
                "llamacpp": web_server.port,
                "vllm": hung_port,
                "lmstudio": trickling_port,
            },
            probe_timeout=0.5,
        )
    assert found.servers == ()
    notes = dict(zip(("ollama", "llamacpp", "vllm", "lmstudio"), found.notes, strict=True))
    assert notes["ollama"] == (
        f"Ollama check on 127.0.0.1:{odd_ollama.port}: GET /api/tags answered without a "
        "model list; skipped it"
    )
    assert f"127.0.0.1:{web_server.port}: GET /v1/models answered HTTP 404" in notes["llamacpp"]
    assert f"127.0.0.1:{hung_port}: no answer to GET /v1/models within 0.5 s" in notes["vllm"]
    # A server sending a byte at a time is cut off by the whole answer's deadline.
    assert "the answer to GET /v1/models took over 1 s" in notes["lmstudio"]


async def test_discover_reads_ports_from_the_environment(tmp_path: Path) -> None:
    with ollama("mistral:7b") as fake:
        found = await discover(
            environ={PORTS_ENV_VAR: f"ollama={fake.port},llamacpp=off,vllm=off,lmstudio=off"},
            home=tmp_path,
        )
    assert [s.server for s in found.servers] == ["ollama"]
    assert found.keys == ()
    assert found.clouds == ()
    assert found.embedded == find_embedded()


async def test_server_without_chat_models_is_a_note_not_a_choice() -> None:
    with ollama("nomic-embed-text") as fake:
        found = await discover(environ={}, ports={**OFF, "ollama": fake.port})
    assert found.servers == ()
    assert any("no chat model" in note for note in found.notes)


def test_embedded_model_detection_matches_the_install() -> None:
    embedded = find_embedded()
    if embedded.available:
        assert embedded.missing() is None
    else:
        assert "pip install" in (embedded.missing() or "")
