"""Role assignment rules for ``rolecall init`` and the config text they produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from rolecall.config.load import load_config
from rolecall.setup.discover import Discovery, EmbeddedModel, LocalServer, find_keys
from rolecall.setup.proposal import Proposal, propose, render_yaml

EMBEDDED = EmbeddedModel(True, "/models/smol.gguf", "SmolLM2-135M-Instruct")
NO_EMBEDDED = EmbeddedModel(False, None, "SmolLM2-135M-Instruct")
OLLAMA = LocalServer("ollama", "Ollama", 11434, ("llama3.2:latest", "qwen2.5:7b"))
ROLES = ("clarifier", "planner", "coder", "reviewer")


def _found(
    *key_vars: str, servers: tuple[LocalServer, ...] = (), embedded: EmbeddedModel = EMBEDDED
) -> Discovery:
    keys = find_keys({var: "test-key-value" for var in key_vars})
    return Discovery(keys=keys, servers=servers, embedded=embedded)


def _vendor_of(proposal: Proposal, provider_id: str) -> str:
    return next(e.candidate.vendor for e in proposal.providers if e.candidate.id == provider_id)


def _check_chains(proposal: Proposal, local_ids: set[str]) -> None:
    for role in ROLES:
        a = proposal.role(role)
        chain = [a.provider, *a.fallback]
        assert len(chain) == len(set(chain)), f"{role} repeats a provider: {chain}"
        if local_ids:
            assert chain[-1] in local_ids, f"{role} does not end on a local model: {chain}"
            # default_provider sits before the local tail, so the router never appends it last
            assert proposal.default_provider in chain


def _load(proposal: Proposal, found: Discovery, tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "rolecall.yaml"
    path.write_text(render_yaml(proposal, found), encoding="utf-8")
    config = load_config(path, environ=env)
    for role in ROLES:
        a = proposal.role(role)
        assert config.chain(role)[: 1 + len(a.fallback)] == [a.provider, *a.fallback]


def test_one_vendor_uses_its_cheap_model_to_clarify(tmp_path: Path) -> None:
    found = _found("OPENAI_API_KEY")
    proposal = propose(found)
    assert proposal.role("planner").model == "gpt-4.1"
    assert proposal.role("coder").model == "gpt-4.1"
    assert proposal.role("reviewer").model == "gpt-4.1"
    assert proposal.role("clarifier").model == "gpt-4.1-mini"
    _check_chains(proposal, {"local"})
    _load(proposal, found, tmp_path, {"OPENAI_API_KEY": "x"})


def test_two_vendors_keep_the_reviewer_off_the_coders_vendor(tmp_path: Path) -> None:
    found = _found("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    proposal = propose(found)
    assert proposal.role("planner").model == "claude-sonnet-4-5"
    coder, reviewer = proposal.role("coder"), proposal.role("reviewer")
    assert _vendor_of(proposal, coder.provider) != _vendor_of(proposal, reviewer.provider)
    _check_chains(proposal, {"local"})
    _load(proposal, found, tmp_path, {"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y"})


def test_three_vendors_spread_the_roles() -> None:
    proposal = propose(_found("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"))
    vendors = {r: _vendor_of(proposal, proposal.role(r).provider) for r in ROLES}
    assert vendors["planner"] == "anthropic"
    assert len({vendors["planner"], vendors["coder"], vendors["reviewer"]}) == 3
    assert proposal.role("clarifier").model == "gpt-4.1-mini"  # the cheapest capable one
    assert proposal.default_provider == "claude"


def test_a_weaker_second_vendor_reviews_but_does_not_code() -> None:
    proposal = propose(_found("ANTHROPIC_API_KEY", "GROQ_API_KEY"))
    assert proposal.role("coder").provider == "claude"
    assert proposal.role("reviewer").provider == "groq"


def test_no_key_runs_on_the_local_server_then_the_embedded_model(tmp_path: Path) -> None:
    found = _found(servers=(OLLAMA,))
    proposal = propose(found)
    for role in ROLES:
        assert proposal.role(role).provider == "ollama"
        assert proposal.role(role).fallback == ("local",)
    assert proposal.role("planner").model == "llama3.2:latest"
    _load(proposal, found, tmp_path, {})


def test_nothing_found_still_writes_a_loadable_config_and_says_what_to_install(
    tmp_path: Path,
) -> None:
    found = _found(embedded=NO_EMBEDDED)
    proposal = propose(found)
    assert {proposal.role(r).provider for r in ROLES} == {"local"}
    assert any("pip install" in note for note in proposal.notes)
    _load(proposal, found, tmp_path, {})


@pytest.mark.parametrize("key_var", ["MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY"])
def test_compatible_vendors_get_their_base_url_and_a_key_variable(
    key_var: str, tmp_path: Path
) -> None:
    found = _found(key_var, servers=(OLLAMA,))
    proposal = propose(found)
    text = render_yaml(proposal, found)
    assert "base_url: https://" in text and f"${{{key_var}}}" in text
    assert "test-key-value" not in text
    _check_chains(proposal, {"ollama", "local"})
    _load(proposal, found, tmp_path, {key_var: "x"})
